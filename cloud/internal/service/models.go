package service

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net/http"

	"github.com/outpost-iot/outpost/cloud/internal/api"
	"github.com/outpost-iot/outpost/cloud/internal/keys"
	"github.com/outpost-iot/outpost/cloud/internal/modelstore"
	"github.com/outpost-iot/outpost/shared/modelpkg"
)

// openModels loads (or creates) the model-signing key and opens the model
// store. A replica whose key is not the fleet's starts without the model
// endpoints and logs why; the other replicas serve them.
func (s *Service) openModels(ctx context.Context) error {
	log := s.cfg.Logger
	key, created, err := keys.LoadOrCreate(s.cfg.SigningKey)
	if err != nil {
		return fmt.Errorf("service: model-signing key: %w", err)
	}
	pub := modelpkg.FormatPublicKey(key.Public().(ed25519.PublicKey))
	if created {
		log.Info("model-signing key created", "file", s.cfg.SigningKey, "public_key", pub)
	} else if keys.LoosePermissions(s.cfg.SigningKey) {
		log.Warn("model-signing key file is readable by group or others: chmod 600 it", "file", s.cfg.SigningKey)
	}
	st, err := modelstore.Open(ctx, s.js, modelstore.Config{Key: key, MaxModelBytes: s.cfg.MaxModelBytes, Now: s.cfg.Now, Logger: log})
	if errors.Is(err, modelstore.ErrKeyMismatch) {
		log.Error("model endpoints disabled on this replica", "err", err)
		return nil
	}
	if err != nil {
		return err
	}
	s.models = st
	return nil
}

// modelAPI is the model store as the API sees it; nil when disabled.
func (s *Service) modelAPI() api.ModelStore {
	if s.models == nil {
		return nil
	}
	return s.models
}

// Models is the model store, nil on a replica whose signing key is not the
// fleet's.
func (s *Service) Models() *modelstore.Store { return s.models }

// withModelRoutes serves the model store's read-only HTTP mirror
// (/api/v1/models..., /api/v1/keys/public) in front of next.
func (s *Service) withModelRoutes(next http.Handler) http.Handler {
	if s.models == nil {
		return next
	}
	mux := http.NewServeMux()
	models := api.ModelsHTTP(s.models, s.models, s.cfg.Logger)
	mux.Handle("/api/v1/models", models)
	mux.Handle("/api/v1/models/", models)
	mux.Handle("/api/v1/keys/", models)
	mux.Handle("/", next)
	return mux
}
