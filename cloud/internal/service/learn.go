package service

import (
	"context"
	"time"

	"github.com/outpost-iot/outpost/cloud/internal/api"
	"github.com/outpost-iot/outpost/cloud/internal/learn"
	"github.com/prometheus/client_golang/prometheus"
)

// startLearn starts the learning loop. A replica without the model store
// (its signing key is not the fleet's) cannot sign challengers: it serves
// the history and approvals but does not learn.
func (s *Service) startLearn(ctx context.Context) (*learn.Learner, error) {
	cfg := s.cfg.Learn
	cfg.Rollouts, cfg.Devices, cfg.Events, cfg.Now, cfg.Logger = s.rollouts, s.registry.Devices, s.events, s.cfg.Now, s.cfg.Logger
	if s.models != nil {
		cfg.Models = s.models
	} else if cfg.Mode != "" && cfg.Mode != learn.ModeOff {
		s.cfg.Logger.Error("learning loop off on this replica: the model store is disabled (see above)", "mode", cfg.Mode)
		cfg.Mode = learn.ModeOff
	}
	l, err := learn.Start(ctx, s.js, cfg)
	if err != nil {
		return nil, err
	}
	s.metrics.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "outpost_cloud", Name: "learn_leader",
		Help: "1 while this replica holds the leader lease of the learning loop (runs drift checks, challengers and their rollouts), else 0.",
	}, func() float64 {
		if l.Leading() {
			return 1
		}
		return 0
	}))
	return l, nil
}

// DecisionRow is a learning decision as the dashboard lists it.
type DecisionRow struct {
	Time       time.Time `json:"time"`
	Kind       string    `json:"kind"`
	Stream     string    `json:"stream"`
	Champion   string    `json:"champion"`
	Challenger string    `json:"challenger,omitempty"`
	Rollout    string    `json:"rollout,omitempty"`
	Reason     string    `json:"reason,omitempty"`
}

// DashboardDecisions is how many of the newest learning decisions the
// dashboard lists.
const DashboardDecisions = 20

// listDecisions lists the newest learning decisions for the dashboard
// (/api/v1/learn), newest first.
func (s *Service) listDecisions(ctx context.Context) (any, error) {
	list, err := s.learn.History(ctx, api.ModelHistoryQuery{Limit: DashboardDecisions})
	if err != nil {
		return nil, err
	}
	out := make([]DecisionRow, 0, len(list))
	for _, d := range list {
		out = append(out, DecisionRow{Time: d.Time, Kind: d.Kind, Stream: d.Stream, Champion: d.Champion, Challenger: d.Challenger, Rollout: d.Rollout, Reason: d.Reason})
	}
	return out, nil
}

// Learner is the learning loop.
func (s *Service) Learner() *learn.Learner { return s.learn }
