package rollout

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/outpost-iot/outpost/cloud/internal/api"
	"github.com/outpost-iot/outpost/shared/wire"
)

// StartRollout checks req, picks the targets and stores the new rollout,
// which this replica then drives.
func (c *Controller) StartRollout(ctx context.Context, req api.RolloutStartRequest) (api.Rollout, error) {
	name, version, err := wire.ParseModelID(strings.TrimSpace(req.Model))
	if err != nil {
		return api.Rollout{}, &api.BadRequestError{Err: fmt.Errorf("rollouts.start: %w", err)}
	}
	if c.cfg.Models == nil {
		return api.Rollout{}, api.WithCode(api.CodeUnavailable, errors.New("rollouts.start: the model store is disabled on this replica (see its log); try again"))
	}
	if _, err := c.cfg.Models.Pull(ctx, api.ModelRef{Name: name, Version: version}); err != nil {
		return api.Rollout{}, err
	}
	stream := strings.TrimSpace(req.Stream)
	if stream == "" {
		stream = AllStreams
	}
	return c.create(ctx, api.Rollout{Kind: api.KindModel, Model: wire.ModelID(name, version), Stream: stream}, req)
}

// create picks the targets of req and stores rollout r (its Kind, Model or
// Config and Stream set), which this replica then drives.
func (c *Controller) create(ctx context.Context, r api.Rollout, req api.RolloutStartRequest) (api.Rollout, error) {
	if req.Bake < 0 || req.SwapTimeout < 0 || req.BatchSize < 0 {
		return api.Rollout{}, &api.BadRequestError{Err: errors.New("bake, swap_timeout and batch_size must not be negative")}
	}
	targets, err := selectTargets(req.To, c.cfg.Devices())
	if err != nil {
		return api.Rollout{}, err
	}
	if len(targets) == 0 {
		return api.Rollout{}, api.WithCode(api.CodeNotFound, fmt.Errorf("no agent matches --to %s (see `fleet devices list`)", req.To))
	}
	if len(targets) > MaxTargets {
		return api.Rollout{}, &api.BadRequestError{Err: fmt.Errorf("%d agents match --to %s, more than the %d one rollout takes: use group=G", len(targets), req.To, MaxTargets)}
	}
	var online []api.Device
	for _, d := range targets {
		if d.Online {
			online = append(online, d)
		}
	}
	if len(online) == 0 {
		return api.Rollout{}, api.WithCode(api.CodeConflict, fmt.Errorf("none of the %d agents matching --to %s is online", len(targets), req.To))
	}
	canaries, err := parseCanary(req.Canary, len(online))
	if err != nil {
		return api.Rollout{}, &api.BadRequestError{Err: err}
	}
	if err := c.checkOverlap(r.Kind, r.Stream, targets); err != nil {
		return api.Rollout{}, err
	}
	now := c.cfg.Now().UTC()
	r.ID, r.To, r.State, r.Canaries = newID(now), strings.TrimSpace(req.To), api.RolloutRolling, canaries
	r.Bake, r.SwapTimeout, r.BatchSize = req.Bake, req.SwapTimeout, req.BatchSize
	r.Created, r.Updated, r.Driver, r.Lease = now, now, c.me, now.Add(c.cfg.Lease)
	if r.SwapTimeout == 0 {
		r.SwapTimeout = wire.Duration(DefaultSwapTimeout)
	}
	if rest := len(online) - canaries; r.BatchSize == 0 {
		r.BatchSize = max(1, (rest+3)/4)
	}
	if canaries > 0 {
		r.State = api.RolloutCanary
	}
	for i, d := range online {
		r.Agents = append(r.Agents, api.RolloutAgent{
			ID: d.ID, Phase: api.PhasePending, Canary: i < canaries, Since: now,
			Before: countersOf(d), BeforeError: d.LastError,
		})
	}
	for _, d := range targets {
		if !d.Online {
			r.Agents = append(r.Agents, api.RolloutAgent{ID: d.ID, Phase: api.PhaseSkipped, Since: now, Error: "offline when the rollout started"})
		}
	}
	if _, err := c.kv.Create(ctx, r.ID, encode(&r)); err != nil {
		return api.Rollout{}, api.WithCode(api.CodeUnavailable, fmt.Errorf("store rollout: %w", err))
	}
	c.mu.Lock()
	c.cache[r.ID] = r
	c.mu.Unlock()
	c.wake()
	if m := c.cfg.Metrics; m != nil {
		m.RolloutsStarted.WithLabelValues(r.Kind).Inc()
		m.RolloutAgents.WithLabelValues(api.PhaseSkipped).Add(float64(len(targets) - len(online)))
	}
	c.cfg.Logger.Info("rollout started", "rollout", r.ID, "what", r.What(), "to", r.To, "stream", r.Stream,
		"agents", len(online), "skipped", len(targets)-len(online), "canaries", canaries, "bake", time.Duration(r.Bake))
	return r, nil
}

// checkOverlap refuses a rollout for a stream that an active rollout is
// changing on one of the same agents.
func (c *Controller) checkOverlap(kind, stream string, targets []api.Device) error {
	want := map[string]bool{}
	for _, d := range targets {
		want[d.ID] = true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range c.cache {
		if r.Kind == "" {
			r.Kind = api.KindModel
		}
		if r.Terminal() || r.Kind != kind || r.Stream != stream {
			continue
		}
		for _, a := range r.Agents {
			if want[a.ID] && a.Phase != api.PhaseSkipped {
				return api.WithCode(api.CodeConflict, fmt.Errorf("%w: rollout %s (%s, %s) is changing the same on %s: wait for it, or `fleet rollout abort %s`", ErrConflict, r.ID, r.What(), r.State, a.ID, r.ID))
			}
		}
	}
	return nil
}

// ListRollouts returns the rollouts, newest first, without their agents.
func (c *Controller) ListRollouts(ctx context.Context) ([]api.Rollout, error) {
	c.mu.Lock()
	out := make([]api.Rollout, 0, len(c.cache))
	for _, r := range c.cache {
		r.Agents = nil
		out = append(out, r)
	}
	c.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.After(out[j].Created)
		}
		return out[i].ID > out[j].ID
	})
	return out, nil
}

// RolloutStatus reads rollout id (empty: the newest).
func (c *Controller) RolloutStatus(ctx context.Context, id string) (api.Rollout, error) {
	if id == "" {
		list, _ := c.ListRollouts(ctx)
		if len(list) == 0 {
			return api.Rollout{}, api.WithCode(api.CodeNotFound, fmt.Errorf("%w: there are no rollouts yet", ErrNotFound))
		}
		id = list[0].ID
	}
	r, _, err := c.get(ctx, id)
	return r, err
}

func (c *Controller) get(ctx context.Context, id string) (api.Rollout, uint64, error) {
	if !validKey(id) {
		return api.Rollout{}, 0, &api.BadRequestError{Err: fmt.Errorf("rollout id %q is not valid (see `fleet rollout status`)", id)}
	}
	e, err := c.kv.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return api.Rollout{}, 0, api.WithCode(api.CodeNotFound, fmt.Errorf("%w: %s (see `fleet rollout status`)", ErrNotFound, id))
	}
	if err != nil {
		return api.Rollout{}, 0, api.WithCode(api.CodeUnavailable, fmt.Errorf("read rollout %s: %w", id, err))
	}
	r, err := decode(e.Value())
	if err != nil {
		return api.Rollout{}, 0, fmt.Errorf("rollout %s is not valid JSON: %w", id, err)
	}
	return r, e.Revision(), nil
}

func validKey(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, r := range id {
		if !(r == '-' || r == '_' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9')) {
			return false
		}
	}
	return true
}

// AbortRollout asks the driver to stop rollout id and waits (up to 5 s)
// until it has.
func (c *Controller) AbortRollout(ctx context.Context, id string) (api.Rollout, error) {
	return c.request(ctx, id, "abort", func(r api.Rollout) error {
		if r.Terminal() || r.State == api.RolloutRollingBack {
			return api.WithCode(api.CodeConflict, fmt.Errorf("%w: rollout %s is %s already; only a running rollout can be aborted", ErrConflict, id, r.State))
		}
		return nil
	})
}

// RollbackRollout asks the driver to restore the previous desired state of
// every agent rollout id touched, and waits (up to 5 s) until it has.
func (c *Controller) RollbackRollout(ctx context.Context, id string) (api.Rollout, error) {
	return c.request(ctx, id, "rollback", func(r api.Rollout) error {
		if r.State == api.RolloutRolledBack && !hasTouched(&r) {
			return api.WithCode(api.CodeConflict, fmt.Errorf("%w: rollout %s is rolled back already", ErrConflict, id))
		}
		return nil
	})
}

func (c *Controller) request(ctx context.Context, id, what string, ok func(api.Rollout) error) (api.Rollout, error) {
	for {
		r, rev, err := c.get(ctx, id)
		if err != nil {
			return r, err
		}
		if err := ok(r); err != nil {
			return r, err
		}
		r.Request = what
		if _, err := c.kv.Update(ctx, id, encode(&r), rev); err != nil {
			if ctx.Err() != nil {
				return r, api.WithCode(api.CodeUnavailable, fmt.Errorf("rollout %s: %w", id, err))
			}
			continue // the driver wrote meanwhile
		}
		break
	}
	c.wake()
	wait, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for {
		r, _, err := c.get(ctx, id)
		if err != nil || r.Request == "" && r.State != api.RolloutRollingBack {
			return r, err
		}
		select {
		case <-wait.Done():
			return r, nil // applied later by the driver
		case <-time.After(50 * time.Millisecond):
		}
	}
}
