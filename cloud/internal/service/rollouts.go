package service

import (
	"context"
	"time"

	"github.com/outpost-iot/outpost/cloud/internal/rollout"
)

// startRollouts starts the rollout controller. Without the model store
// (a replica whose signing key is not the fleet's) it still drives and
// reports rollouts but cannot start new ones.
func (s *Service) startRollouts(ctx context.Context) (*rollout.Controller, error) {
	cfg := rollout.Config{Devices: s.registry.Devices, Now: s.cfg.Now, Logger: s.cfg.Logger, Metrics: s.metrics}
	if s.models != nil {
		cfg.Models = s.models
	}
	return rollout.Start(ctx, s.js, cfg)
}

// RolloutRow is a rollout as the dashboard lists it.
type RolloutRow struct {
	ID      string         `json:"id"`
	Model   string         `json:"model"`
	To      string         `json:"to"`
	Stream  string         `json:"stream"`
	State   string         `json:"state"`
	Agents  map[string]int `json:"agents"`
	Created time.Time      `json:"created"`
	Reason  string         `json:"reason,omitempty"`
}

// DashboardRollouts is how many of the newest rollouts the dashboard lists.
const DashboardRollouts = 20

// listRollouts lists the newest rollouts for the dashboard
// (/api/v1/rollouts), newest first: id, model, target, state, agents per
// phase, reason.
func (s *Service) listRollouts(ctx context.Context) (any, error) {
	list, err := s.rollouts.ListRollouts(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]RolloutRow, 0, min(len(list), DashboardRollouts))
	for _, r := range list[:min(len(list), DashboardRollouts)] {
		out = append(out, RolloutRow{ID: r.ID, Model: r.What(), To: r.To, Stream: r.Stream, State: r.State, Agents: r.Counts, Created: r.Created, Reason: r.Reason})
	}
	return out, nil
}

// Rollouts is the rollout controller.
func (s *Service) Rollouts() *rollout.Controller { return s.rollouts }
