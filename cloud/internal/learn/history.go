package learn

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/outpost-iot/outpost/cloud/internal/api"
	"github.com/outpost-iot/outpost/shared/modelpkg"
	"github.com/outpost-iot/outpost/shared/wire"
)

// DefaultHistoryLimit is how many decisions History returns by default.
const DefaultHistoryLimit = 100

// record stores d under a new id (time-ordered: the nanosecond time, then
// random bytes) and returns it with its id and time.
func (l *Learner) record(ctx context.Context, d api.ModelDecision) api.ModelDecision {
	if d.Time.IsZero() {
		d.Time = l.cfg.Now().UTC()
	}
	var r [3]byte
	_, _ = rand.Read(r[:])
	d.ID = fmt.Sprintf("%019d-%s", d.Time.UnixNano(), hex.EncodeToString(r[:]))
	b, err := json.Marshal(d)
	if err == nil {
		_, err = l.kv.Create(ctx, d.ID, b)
	}
	if err != nil {
		l.cfg.Logger.Warn("learn: record decision", "kind", d.Kind, "stream", d.Stream, "err", err)
	}
	l.cfg.Logger.Info("learn decision", "kind", d.Kind, "stream", d.Stream, "champion", d.Champion, "challenger", d.Challenger, "rollout", d.Rollout, "reason", d.Reason)
	if l.cfg.OnDecision != nil {
		l.cfg.OnDecision(d)
	}
	return d
}

// History lists the recorded decisions, newest first, those about q.Name
// only when it is set (as champion or challenger), at most q.Limit.
func (l *Learner) History(ctx context.Context, q api.ModelHistoryQuery) ([]api.ModelDecision, error) {
	if q.Limit < 0 || q.Limit > 10000 {
		return nil, &api.BadRequestError{Err: fmt.Errorf("models.history: limit %d out of range 0..10000", q.Limit)}
	}
	if q.Limit == 0 {
		q.Limit = DefaultHistoryLimit
	}
	if q.Name != "" {
		if err := modelpkg.ValidName(q.Name); err != nil {
			return nil, &api.BadRequestError{Err: fmt.Errorf("models.history: %w", err)}
		}
	}
	keys, err := l.kv.ListKeys(ctx)
	if err != nil {
		return nil, api.WithCode(api.CodeUnavailable, fmt.Errorf("models.history: %w", err))
	}
	var all []string
	for k := range keys.Keys() {
		all = append(all, k)
	}
	sort.Sort(sort.Reverse(sort.StringSlice(all)))
	out := []api.ModelDecision{}
	for _, k := range all {
		if len(out) >= q.Limit {
			break
		}
		e, err := l.kv.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return nil, api.WithCode(api.CodeUnavailable, fmt.Errorf("models.history: %w", err))
		}
		var d api.ModelDecision
		if json.Unmarshal(e.Value(), &d) != nil {
			continue
		}
		if q.Name != "" && !about(d, q.Name) {
			continue
		}
		out = append(out, d)
	}
	return out, nil
}

func about(d api.ModelDecision, name string) bool {
	for _, id := range []string{d.Champion, d.Challenger} {
		if n, _, err := wire.ParseModelID(id); err == nil && n == name {
			return true
		}
	}
	return false
}

// Approve rolls out a challenger that waits for approval (ref names it
// with its version) and records the decision: the awaiting record gets its
// Approved time and a promoted record names the rollout.
func (l *Learner) Approve(ctx context.Context, ref api.ModelRef) (api.ModelDecision, error) {
	if ref.Version < 1 {
		return api.ModelDecision{}, &api.BadRequestError{Err: fmt.Errorf("models.approve: name the version, e.g. %s@2 (see `fleet models history`)", ref.Name)}
	}
	want := wire.ModelID(ref.Name, ref.Version)
	keys, err := l.kv.ListKeys(ctx)
	if err != nil {
		return api.ModelDecision{}, api.WithCode(api.CodeUnavailable, fmt.Errorf("models.approve: %w", err))
	}
	var all []string
	for k := range keys.Keys() {
		all = append(all, k)
	}
	sort.Sort(sort.Reverse(sort.StringSlice(all)))
	for _, k := range all {
		e, err := l.kv.Get(ctx, k)
		if err != nil {
			continue
		}
		var d api.ModelDecision
		if json.Unmarshal(e.Value(), &d) != nil || d.Challenger != want || d.Kind != api.DecisionAwaitingApproval {
			continue
		}
		if !d.Approved.IsZero() {
			return d, api.WithCode(api.CodeConflict, fmt.Errorf("models.approve: %s was approved already at %s", want, d.Approved.Format("2006-01-02T15:04:05Z")))
		}
		d.Approved = l.cfg.Now().UTC()
		b, _ := json.Marshal(d)
		if _, err := l.kv.Update(ctx, k, b, e.Revision()); err != nil {
			return d, api.WithCode(api.CodeConflict, fmt.Errorf("models.approve: %s is being approved by another request: %w", want, err))
		}
		out, err := l.promote(ctx, d, "approved by the operator")
		if err != nil { // let the operator approve again
			d.Approved = time.Time{}
			if b, merr := json.Marshal(d); merr == nil {
				if e, gerr := l.kv.Get(ctx, k); gerr == nil {
					_, _ = l.kv.Update(ctx, k, b, e.Revision())
				}
			}
		}
		return out, err
	}
	return api.ModelDecision{}, api.WithCode(api.CodeNotFound, fmt.Errorf("models.approve: no challenger %s awaits approval (see `fleet models history %s`)", want, ref.Name))
}

// promote starts the rollout of d's challenger and records it.
func (l *Learner) promote(ctx context.Context, d api.ModelDecision, why string) (api.ModelDecision, error) {
	if l.cfg.Rollouts == nil {
		return d, api.WithCode(api.CodeUnavailable, errors.New("learn: no rollout controller on this replica"))
	}
	to, err := l.cfg.RolloutTo, error(nil)
	if to == AutoTargets {
		to, err = Targets(l.cfg.Devices(), d.Key, d.Champion)
	}
	var r api.Rollout
	if err == nil {
		r, err = l.cfg.Rollouts.StartRollout(ctx, api.RolloutStartRequest{
			Model: d.Challenger, To: to, Canary: l.cfg.Canary, Stream: d.Key,
			Bake: wire.Duration(l.cfg.Bake), SwapTimeout: wire.Duration(l.cfg.SwapTimeout),
		})
	}
	out := api.ModelDecision{
		Kind: api.DecisionPromoted, Stream: d.Stream, Key: d.Key, Champion: d.Champion, Challenger: d.Challenger,
		Trigger: d.Trigger, Compare: d.Compare, Rollout: r.ID, Approved: d.Approved, Reason: why,
	}
	if err != nil {
		out.Kind, out.Reason = api.DecisionFailed, strings.TrimSpace(why+"; rollout did not start: "+err.Error())
		l.record(ctx, out)
		return out, err
	}
	l.promoted(d.Stream, d.Champion, d.Challenger)
	return l.record(ctx, out), nil
}

// Targets picks the rollout target (api.RolloutStartRequest.To) for a
// challenger of champion under desired-models key: the agents whose
// reported models run champion under key. When they are every agent it is
// "all"; when they are one group (State.Group) and that whole group, it is
// "group=G"; when there is one, "device=D". Otherwise there is no target
// that gives the model to them only, and Targets fails (set --learn-to, or
// roll the stored challenger out by hand).
func Targets(devs []api.Device, key, champion string) (string, error) {
	var runs []api.Device
	groups := map[string]int{}
	for _, d := range devs {
		groups[d.Group]++
		if d.Models[key] == champion {
			runs = append(runs, d)
		}
	}
	switch {
	case len(runs) == 0:
		return "", fmt.Errorf("no agent runs %s under %q any more", champion, key)
	case len(runs) == len(devs):
		return "all", nil
	case len(runs) == 1:
		return "device=" + runs[0].ID, nil
	}
	g := runs[0].Group
	for _, d := range runs {
		if d.Group != g {
			g = ""
			break
		}
	}
	if g != "" && groups[g] == len(runs) {
		return "group=" + g, nil
	}
	return "", fmt.Errorf("the %d agents running %s are neither the whole fleet nor one whole group: roll the challenger out with `fleet rollout start`, or set --learn-to", len(runs), champion)
}
