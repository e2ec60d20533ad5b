package learn

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/outpost-iot/outpost/cloud/internal/api"
	"github.com/outpost-iot/outpost/models/manifest"
	"github.com/outpost-iot/outpost/shared/wire"
)

// challenge trains a challenger for stream j.stream, compares it with the
// champion and promotes it, asks for approval or rejects it, recording each
// step. The stream is busy until it returns.
func (l *Learner) challenge(j job) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	l.mu.Lock()
	st := l.streams[j.stream]
	if st == nil {
		l.mu.Unlock()
		return
	}
	champID, key := st.champion, st.key
	// The champion judges every stream under its key, so the challenger
	// is trained and judged on the windows of all of them: of each, the
	// first (1 - HeldOut) of its recent windows to train, the rest held
	// out, and its reference windows for the threshold.
	peers := l.peers(st)
	var ref, trainWins, held [][]float64
	for _, p := range peers {
		recent := vals(p.recent)
		cut := int(math.Round(float64(len(recent)) * (1 - l.cfg.HeldOut)))
		trainWins, held = append(trainWins, recent[:cut]...), append(held, recent[cut:]...)
		ref = append(ref, vals(p.ref)...)
	}
	// The peers are busy too: no second challenger for the same champion
	// from their drift while this one trains.
	streamNames := make([]string, len(peers))
	marked := map[string]bool{}
	for i, p := range peers {
		streamNames[i] = p.name
		if p != st && !p.busy {
			p.busy, marked[p.name] = true, true
		}
	}
	champ := l.champion(champID)
	l.mu.Unlock()
	base := api.ModelDecision{Stream: j.stream, Key: key, Champion: champID, Trigger: j.trigger, Drift: j.drift}
	if j.drift != nil {
		d := base
		d.Kind = api.DecisionDrift
		d.Reason = fmt.Sprintf("%s test on %s: %.3f > %.3f (reference %d, recent %d)", j.drift.Test, j.drift.Feature, j.drift.Statistic, j.drift.Critical, j.drift.Reference, j.drift.Recent)
		if j.eff[0] > 0 {
			d.Reason = fmt.Sprintf("%s test on %s: %.3f > %.3f (reference %d windows, %.1f effective; recent %d, %.1f effective)",
				j.drift.Test, j.drift.Feature, j.drift.Statistic, j.drift.Critical, j.drift.Reference, j.eff[0], j.drift.Recent, j.eff[1])
		}
		l.record(ctx, d)
	}
	// done ends the challenge: the streams are no longer busy; with hold
	// (a failure or a rejection) drift triggers no challenger for them
	// for a while (the schedule may); with resetRef their references
	// start over.
	done := func(resetRef, hold bool) {
		l.mu.Lock()
		defer l.mu.Unlock()
		st := l.streams[j.stream]
		if st == nil {
			return
		}
		until := l.cfg.Now().Add(min(l.cfg.Interval, RetryAfter))
		st.busy = false
		if hold {
			st.hold = until
		}
		for name := range marked {
			if p := l.streams[name]; p != nil {
				p.busy = false
				if hold {
					p.hold = until
				}
			}
		}
		if !resetRef {
			return
		}
		// The newest windows become the reference: one drift, one
		// challenger. So for the peers whose windows it used, except
		// those busy with a challenger of their own.
		for _, name := range streamNames {
			p := l.streams[name]
			if p == nil || (p != st && !marked[name]) || len(p.recent) == 0 {
				continue
			}
			n := min(len(p.recent), l.cfg.Reference)
			p.ref = append([]*win(nil), p.recent[len(p.recent)-n:]...)
			p.recent = nil
		}
	}
	fail := func(why string) {
		d := base
		d.Kind, d.Reason = api.DecisionFailed, why
		l.record(ctx, d)
		done(false, true)
	}
	if champ == nil {
		fail(fmt.Sprintf("the champion %s cannot be loaded (see the log)", champID))
		return
	}
	confirmed, rejected := l.verdictWindows(ctx, streamNames, need(champ.m))
	normal := append(append([][]float64(nil), held...), rejected...)
	version, err := l.nextVersion(ctx, champ.m.Name)
	if err != nil {
		fail(err.Error())
		return
	}
	started := time.Now()
	ch, err := trainChallenger(champ.m, version, trainWins, len(peers), l.cfg.Fit)
	if err != nil {
		fail("train: " + err.Error())
		return
	}
	chNet, err := newNet(ch.m, ch.model)
	if err != nil {
		fail("the challenger does not load: " + err.Error())
		return
	}
	l.mu.Lock() // champ's interpreter is shared with the drift check
	cmp := compare(champ, chNet, ref, normal, confirmed, l.cfg.Margin)
	l.mu.Unlock()
	base.Challenger, base.Compare = ch.m.ID(), &cmp
	base.TrainWindows, base.Epochs, base.Loss = ch.windows, ch.epochs, ch.loss
	pooled := ""
	if len(peers) > 1 {
		pooled = fmt.Sprintf(" (trained and judged on the windows of the %d streams %s runs under %q)", len(peers), champID, key)
	}
	l.cfg.Logger.Info("learn: challenger trained", "stream", j.stream, "streams", len(peers), "challenger", ch.m.ID(), "examples", ch.windows, "loss", ch.loss, "took", time.Since(started).Round(time.Millisecond))
	if !cmp.Better {
		d := base
		d.Kind = api.DecisionRejected
		d.Reason = reason(cmp, l.cfg.Margin) + pooled
		l.record(ctx, d)
		done(true, true)
		return
	}
	if !l.leading() {
		// Another replica leads now: it stores and rolls out, not us.
		l.cfg.Logger.Warn("learn: lost the leader lease while training; the challenger is dropped", "stream", j.stream, "challenger", ch.m.ID())
		done(false, false)
		return
	}
	if err := l.store(ctx, ch); err != nil {
		fail(fmt.Sprintf("store %s: %v", ch.m.ID(), err))
		return
	}
	if l.cfg.Mode == ModeApprove {
		d := base
		d.Kind = api.DecisionAwaitingApproval
		d.Reason = reason(cmp, l.cfg.Margin) + pooled + fmt.Sprintf("; approve with `fleet models approve %s`", ch.m.ID())
		l.record(ctx, d)
		done(true, false)
		return
	}
	done(true, false)
	if _, err := l.promote(ctx, base, reason(cmp, l.cfg.Margin)+pooled); err != nil {
		l.cfg.Logger.Warn("learn: promote", "challenger", ch.m.ID(), "err", err)
	}
}

func vals(ws []*win) [][]float64 {
	out := make([][]float64, len(ws))
	for i, w := range ws {
		out[i] = w.vals
	}
	return out
}

// compare judges both models on the same windows (see the package doc for
// the rule).
func compare(champ, ch *net, ref, normal, confirmed [][]float64, margin float64) api.Comparison {
	errs := func(n *net, ws [][]float64) []float64 {
		var out []float64
		for _, w := range ws {
			if e, ok := n.errOf(w); ok {
				out = append(out, e)
			}
		}
		return out
	}
	above := func(es []float64, t float64) float64 {
		if len(es) == 0 {
			return 0
		}
		k := 0
		for _, e := range es {
			if e > t {
				k++
			}
		}
		return float64(k) / float64(len(es))
	}
	t := quantile(errs(champ, ref), ThresholdQuantile)
	cn, hn := errs(champ, normal), errs(ch, normal)
	ca, ha := errs(champ, confirmed), errs(ch, confirmed)
	c := api.Comparison{Normal: len(cn), Confirmed: len(ca), Threshold: t,
		ChampionFalseAlarms: above(cn, t), ChallengerFalseAlarms: above(hn, t),
		ChampionDetected: 1, ChallengerDetected: 1}
	c.ChampionMeanError, _ = meanStd(cn)
	c.ChallengerMeanError, _ = meanStd(hn)
	if len(ca) > 0 {
		c.ChampionDetected, c.ChallengerDetected = above(ca, t), above(ha, t)
	}
	c.Better = len(cn) > 0 && len(hn) == len(cn) &&
		c.ChallengerMeanError <= (1-margin)*c.ChampionMeanError &&
		c.ChallengerFalseAlarms <= c.ChampionFalseAlarms &&
		c.ChallengerDetected >= c.ChampionDetected
	return c
}

func reason(c api.Comparison, margin float64) string {
	verdict := "better"
	if !c.Better {
		var why []string
		if c.Normal == 0 {
			why = append(why, "no held-out normal windows")
		}
		if !(c.ChallengerMeanError <= (1-margin)*c.ChampionMeanError) {
			why = append(why, fmt.Sprintf("mean error not %.0f%% lower", 100*margin))
		}
		if c.ChallengerFalseAlarms > c.ChampionFalseAlarms {
			why = append(why, "more false alarms")
		}
		if c.ChallengerDetected < c.ChampionDetected {
			why = append(why, "detects fewer confirmed anomalies")
		}
		verdict = "not better: " + strings.Join(why, ", ")
	}
	return fmt.Sprintf("%s — on %d normal windows mean error %.4f vs champion %.4f, false alarms %.1f%% vs %.1f%% at threshold %.4f; %d confirmed windows detected %.0f%% vs %.0f%%",
		verdict, c.Normal, c.ChallengerMeanError, c.ChampionMeanError, 100*c.ChallengerFalseAlarms, 100*c.ChampionFalseAlarms, c.Threshold,
		c.Confirmed, 100*c.ChallengerDetected, 100*c.ChampionDetected)
}

// peers returns st and the other streams whose champion is st's under
// the same desired-models key (l.mu held), st first, then by name.
func (l *Learner) peers(st *stream) []*stream {
	out := []*stream{st}
	for _, p := range l.streams {
		if p != st && p.key == st.key && p.champion == st.champion {
			out = append(out, p)
		}
	}
	sort.Slice(out[1:], func(i, j int) bool { return out[1+i].name < out[1+j].name })
	return out
}

// verdictWindows returns the windows of the streams' events the cloud
// confirmed and rejected in the lookback.
func (l *Learner) verdictWindows(ctx context.Context, streams []string, n int) (confirmed, rejected [][]float64) {
	if l.cfg.Events == nil {
		return nil, nil
	}
	evs, err := l.cfg.Events.QueryEvents(ctx, api.EventsQuery{Since: l.cfg.Lookback.String(), Limit: api.MaxEventsLimit})
	if err != nil {
		l.cfg.Logger.Warn("learn: read verdict windows", "err", err)
		return nil, nil
	}
	for _, e := range evs {
		if !slices.Contains(streams, e.Stream) || len(e.Window) < n || len(e.Missing) > 0 {
			continue
		}
		switch e.Verdict {
		case string(wire.Confirmed):
			confirmed = append(confirmed, e.Window)
		case string(wire.Rejected):
			rejected = append(rejected, e.Window)
		}
	}
	return confirmed, rejected
}

// nextVersion is one more than the largest version of name in use: stored
// in the model store, or named by any recorded decision (as champion or
// challenger, rejected and failed ones included, so that a rejected
// challenger's label is never given to another model); at least 2
// (version 1 may be a stock model that is not stored).
func (l *Learner) nextVersion(ctx context.Context, name string) (int, error) {
	list, err := l.cfg.Models.List(ctx)
	if err != nil {
		return 0, fmt.Errorf("list models: %w", err)
	}
	v := 1
	for _, m := range list {
		if m.Name == name {
			v = max(v, m.Version)
		}
	}
	h, err := l.historyVersion(ctx, name)
	if err != nil {
		return 0, err
	}
	return max(v, h) + 1, nil
}

// historyVersion is the largest version of name that a recorded decision
// names (0 when none).
func (l *Learner) historyVersion(ctx context.Context, name string) (int, error) {
	lister, err := l.kv.ListKeys(ctx)
	if err != nil {
		return 0, fmt.Errorf("read the model history: %w", err)
	}
	var keys []string
	for k := range lister.Keys() {
		keys = append(keys, k)
	}
	v := 0
	for _, k := range keys {
		e, err := l.kv.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("read the model history: %w", err)
		}
		var d api.ModelDecision
		if json.Unmarshal(e.Value(), &d) != nil {
			continue
		}
		for _, id := range []string{d.Champion, d.Challenger} {
			if n, ver, err := wire.ParseModelID(id); err == nil && n == name {
				v = max(v, ver)
			}
		}
	}
	return v, nil
}

// store uploads the challenger's .tflite and has the model store check,
// sign and store it with its manifest.
func (l *Learner) store(ctx context.Context, ch *trained) error {
	var id [8]byte
	_, _ = rand.Read(id[:])
	upload := api.UploadPrefix + "learn-" + hex.EncodeToString(id[:])
	if _, err := l.obj.PutBytes(ctx, upload, ch.model); err != nil {
		return fmt.Errorf("upload: %w", err)
	}
	mj, err := ch.m.Marshal()
	if err != nil {
		return err
	}
	_, err = l.cfg.Models.Push(ctx, api.ModelPushRequest{Name: ch.m.Name, Version: ch.m.Version, Role: manifest.RoleEdgeInt8, Manifest: mj, Upload: upload})
	return err
}

// promoted makes challenger the champion of stream (after a rollout
// started).
func (l *Learner) promoted(stream, champion, challenger string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.streams[stream]
	if st == nil || st.champion != champion {
		return
	}
	st.previous, st.champion = champion, challenger
}
