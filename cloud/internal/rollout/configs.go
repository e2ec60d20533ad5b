package rollout

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/outpost-iot/outpost/cloud/internal/api"
	"github.com/outpost-iot/outpost/shared/names"
	"github.com/outpost-iot/outpost/shared/profile"
)

// ErrConfigRefused: a pushed profile does not validate.
var ErrConfigRefused = errors.New("profile refused")

// PushConfig validates the profile in req with the code `outpost-edge
// validate` runs (profile.Check), stores it in names.BucketConfigs under
// names.ConfigKey(name, revision) and rolls it out like a model: the agents
// must report the profile's name and revision in their state.
//
// The profile must have a name (letters, digits, '-' and '_') and a
// revision greater than every stored revision of that name; a profile that
// sets agent.id may only go to that device.
func (c *Controller) PushConfig(ctx context.Context, req api.ConfigPushRequest) (api.Rollout, error) {
	text := []byte(req.Profile)
	if err := profile.Check(text); err != nil {
		msg := err.Error()
		if ps := profile.AsProblems(err); ps != nil {
			var lines []string
			for _, p := range ps {
				lines = append(lines, p.String())
			}
			msg = fmt.Sprintf("%d problem(s): %s", len(ps), strings.Join(lines, "; "))
		}
		return api.Rollout{}, api.WithCode(api.CodeRefused, fmt.Errorf("%w: %s", ErrConfigRefused, msg))
	}
	p, err := profile.Parse(text)
	if err != nil {
		return api.Rollout{}, api.WithCode(api.CodeRefused, fmt.Errorf("%w: %v", ErrConfigRefused, err))
	}
	if p.Name == "" || names.ValidAgentID(p.Name) != nil {
		return api.Rollout{}, api.WithCode(api.CodeRefused, fmt.Errorf("%w: name %q: give the profile a name of letters, digits, '-' and '_' (name: generic-sensor)", ErrConfigRefused, p.Name))
	}
	if p.Agent.ID != "" && strings.TrimSpace(req.To) != "device="+p.Agent.ID {
		return api.Rollout{}, api.WithCode(api.CodeRefused, fmt.Errorf("%w: it sets agent.id %s, so it can only go --to device=%s; remove agent.id to push it to several agents", ErrConfigRefused, p.Agent.ID, p.Agent.ID))
	}
	latest, err := c.latestConfig(ctx, p.Name)
	if err != nil {
		return api.Rollout{}, err
	}
	if p.Revision <= latest {
		return api.Rollout{}, api.WithCode(api.CodeConflict, fmt.Errorf("profile %s revision %d: the latest stored is revision %d; set revision: %d", p.Name, p.Revision, latest, latest+1))
	}
	key := names.ConfigKey(p.Name, p.Revision)
	if _, err := c.configs.Create(ctx, key, text); err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			return api.Rollout{}, api.WithCode(api.CodeConflict, fmt.Errorf("profile %s revision %d was stored meanwhile; set revision: %d", p.Name, p.Revision, p.Revision+1))
		}
		return api.Rollout{}, api.WithCode(api.CodeUnavailable, fmt.Errorf("store profile %s: %w", key, err))
	}
	c.cfg.Logger.Info("profile stored", "key", key)
	return c.create(ctx, api.Rollout{Kind: api.KindConfig, Config: p.Name + "@" + strconv.FormatInt(p.Revision, 10)}, req.RolloutStartRequest)
}

// latestConfig is the highest stored revision of profile name (0: none).
func (c *Controller) latestConfig(ctx context.Context, name string) (int64, error) {
	l, err := c.configs.ListKeysFiltered(ctx, name+".*")
	if err != nil {
		return 0, api.WithCode(api.CodeUnavailable, fmt.Errorf("list profiles: %w", err))
	}
	defer func() { _ = l.Stop() }()
	var latest int64
	for k := range l.Keys() {
		if rev, err := strconv.ParseInt(strings.TrimPrefix(k, name+"."), 10, 64); err == nil && rev > latest {
			latest = rev
		}
	}
	return latest, nil
}
