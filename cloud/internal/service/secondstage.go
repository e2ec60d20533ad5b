package service

import (
	"context"
	"errors"
	"fmt"

	"github.com/outpost-iot/outpost/cloud/internal/api"
	"github.com/outpost-iot/outpost/cloud/internal/modelstore"
	"github.com/outpost-iot/outpost/cloud/internal/scorer"
	"github.com/outpost-iot/outpost/shared/modelpkg"
)

// secondStage builds the scorer Config.Scorer names: a built-in one
// (scorer.NewRegistry: forecast-cloud, robust-zscore; a bare name selects
// the latest version), or else a cloud-float model in the model store
// ("name" for its latest version, or "name@version"), verified with the
// fleet's signing key. Events of the edge's video model that carry
// features go to the stock video second stage instead (scorer.WithVideo).
func (s *Service) secondStage(ctx context.Context) (scorer.Scorer, error) {
	name := s.cfg.Scorer
	reg := scorer.NewRegistry()
	opts := scorer.Options{Threshold: s.cfg.ScoreThreshold}
	if _, ok := reg.Resolve(name); ok {
		sc, err := reg.New(name, opts)
		if err != nil {
			return nil, err
		}
		s.cfg.Logger.Info("second stage", "model", sc.Name(), "video", scorer.VideoCloudName)
		return scorer.WithVideo(sc)
	}
	if s.models == nil {
		return nil, fmt.Errorf("%w %q: not built in (%v), and this replica has no model store to look in", scorer.ErrUnknown, name, reg.Names())
	}
	ref, err := api.ParseModelRef(name)
	if err != nil {
		return nil, fmt.Errorf("%w %q: not built in (%v), nor a model name: %w", scorer.ErrUnknown, name, reg.Names(), err)
	}
	pkg, mi, err := s.models.Package(ctx, ref)
	if errors.Is(err, modelstore.ErrNotFound) {
		return nil, fmt.Errorf("%w %q: not built in (%v), nor in the model store (push it with `fleet models push FILE --role cloud --manifest M`)", scorer.ErrUnknown, name, reg.Names())
	}
	if err != nil {
		return nil, fmt.Errorf("model %s from the store: %w", ref, err)
	}
	if _, err := modelpkg.Verify(pkg, s.models.PublicKey()); err != nil {
		return nil, fmt.Errorf("model %s from the store: %w", mi.ID(), err)
	}
	if mi.Role != modelpkg.RoleCloud {
		return nil, fmt.Errorf("model %s is an %s model; the second stage runs %s models (pushed with --role cloud)", mi.ID(), mi.Role, modelpkg.RoleCloud)
	}
	sc, err := scorer.NewModelFiles(pkg.Model, pkg.Manifest, opts)
	if err != nil {
		return nil, fmt.Errorf("model %s from the store (its manifest must describe the model as models/stock's do: kind, window, normalisation, thresholds): %w", mi.ID(), err)
	}
	s.cfg.Logger.Info("second stage runs a model from the store", "model", sc.Name(), "sha256", mi.SHA256, "video", scorer.VideoCloudName)
	return scorer.WithVideo(sc)
}
