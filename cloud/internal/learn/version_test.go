package learn

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/outpost-iot/outpost/cloud/internal/api"
	"github.com/outpost-iot/outpost/cloud/internal/streams"
	"github.com/outpost-iot/outpost/models/train"
	"github.com/outpost-iot/outpost/shared/modelpkg"
	"github.com/outpost-iot/outpost/shared/names"
	"github.com/outpost-iot/outpost/shared/testenv"
)

// memStore is a model store in memory: it stores nothing but the list of
// pushed versions, and loads no package (the learner falls back to the
// stock models).
type memStore struct {
	mu   sync.Mutex
	list []api.ModelInfo
}

func (m *memStore) Package(context.Context, api.ModelRef) (*modelpkg.Package, api.ModelInfo, error) {
	return nil, api.ModelInfo{}, errors.New("not stored")
}

func (m *memStore) List(context.Context) ([]api.ModelInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]api.ModelInfo(nil), m.list...), nil
}

func (m *memStore) Push(_ context.Context, req api.ModelPushRequest) (api.ModelDetail, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.list = append(m.list, api.ModelInfo{Name: req.Name, Version: req.Version})
	return api.ModelDetail{}, nil
}

// historyLearner is a Learner on a real history bucket and object store
// with models in mem, not started (tests call its methods).
func historyLearner(t *testing.T, mem *memStore) *Learner {
	t.Helper()
	srv := testenv.StartNATS(t)
	nc, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := streams.Ensure(ctx, js); err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, names.BucketModelHistory)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := js.ObjectStore(ctx, names.ObjectModels)
	if err != nil {
		t.Fatal(err)
	}
	l := &Learner{cfg: Config{Mode: ModeApprove, Models: mem, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Fit: train.Config{Epochs: 20}}, js: js, kv: kv, obj: obj,
		streams: map[string]*stream{}, nets: map[string]*net{}, failed: map[string]time.Time{}, jobs: make(chan job, 4)}
	l.cfg.fill()
	return l
}

// TestNextVersionCountsHistory: a version named by any decision, rejected
// and failed challengers included, is never given again; nor is a stored
// one.
func TestNextVersionCountsHistory(t *testing.T) {
	mem := &memStore{list: []api.ModelInfo{{Name: "ae-edge", Version: 1}, {Name: "other", Version: 9}}}
	l := historyLearner(t, mem)
	ctx := context.Background()
	next := func() int {
		t.Helper()
		v, err := l.nextVersion(ctx, "ae-edge")
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	if v := next(); v != 2 {
		t.Fatalf("first challenger version %d, want 2", v)
	}
	l.record(ctx, api.ModelDecision{Kind: api.DecisionRejected, Stream: "s", Champion: "ae-edge@1", Challenger: "ae-edge@2"})
	if v := next(); v != 3 {
		t.Fatalf("after ae-edge@2 was rejected the next version is %d, want 3", v)
	}
	l.record(ctx, api.ModelDecision{Kind: api.DecisionFailed, Stream: "s", Champion: "ae-edge@1", Challenger: "ae-edge@3"})
	l.record(ctx, api.ModelDecision{Kind: api.DecisionRejected, Stream: "s", Champion: "other@9", Challenger: "other@10"})
	if v := next(); v != 4 {
		t.Fatalf("after ae-edge@3 failed the next version is %d, want 4", v)
	}
	mem.Push(ctx, api.ModelPushRequest{Name: "ae-edge", Version: 7})
	if v := next(); v != 8 {
		t.Fatalf("with ae-edge@7 stored the next version is %d, want 8", v)
	}
}

// TestRejectedVersionNotReused: two challengers in a row, the first
// rejected (trained on the old regime, judged on the new): the second has
// the next version, not the rejected one's.
func TestRejectedVersionNotReused(t *testing.T) {
	mem := &memStore{}
	l := historyLearner(t, mem)
	var mu sync.Mutex
	var got []api.ModelDecision
	l.cfg.OnDecision = func(d api.ModelDecision) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, d)
	}
	st := &stream{name: "s", champion: "ae-edge@1", key: "*"}
	l.streams["s"] = st
	fill := func() {
		st.ref, st.recent = nil, nil
		for _, w := range regime(false, 64, 32, 1) {
			l.add(st, time.Time{}, w)
		}
		// Training takes the first 3/4 of the recent windows (old
		// regime), judging the last quarter (new regime).
		for _, w := range append(regime(false, 72, 32, 2), regime(true, 24, 32, 3)...) {
			l.add(st, time.Time{}, w)
		}
	}
	fill()
	l.challenge(job{stream: "s", trigger: "schedule"})
	fill()
	l.challenge(job{stream: "s", trigger: "schedule"})
	mu.Lock()
	defer mu.Unlock()
	var versions []string
	for _, d := range got {
		if d.Challenger != "" {
			versions = append(versions, d.Kind+" "+d.Challenger)
		}
	}
	t.Logf("decisions: %v", versions)
	if len(versions) != 2 || versions[0] != api.DecisionRejected+" ae-edge@2" || versions[1][len(versions[1])-len("ae-edge@3"):] != "ae-edge@3" {
		t.Fatalf("challengers %v, want ae-edge@2 rejected, then ae-edge@3", versions)
	}
}

// TestResumeFromHistory: a new leader takes from the history, per key and
// champion, when the last challenger was judged (and when a promoted one
// started) and how long drift is held after a rejected or failed one.
func TestResumeFromHistory(t *testing.T) {
	l := historyLearner(t, &memStore{})
	ctx := context.Background()
	t0 := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	for _, d := range []api.ModelDecision{
		{Kind: api.DecisionDrift, Key: "*", Champion: "ae-edge@1", Time: t0.Add(-time.Hour)},
		{Kind: api.DecisionRejected, Key: "*", Champion: "ae-edge@1", Challenger: "ae-edge@2", Time: t0},
		{Kind: api.DecisionFailed, Key: "*", Champion: "ae-edge@1", Time: t0.Add(time.Minute)},
		{Kind: api.DecisionPromoted, Key: "sensors/#", Champion: "ae-edge@1", Challenger: "ae-edge@3", Time: t0.Add(2 * time.Minute)},
	} {
		l.record(ctx, d)
	}
	res, err := l.readResume(ctx)
	if err != nil {
		t.Fatal(err)
	}
	hold := min(l.cfg.Interval, RetryAfter)
	for id, want := range map[[2]string]resumed{
		{"*", "ae-edge@1"}:         {after: t0, hold: t0.Add(time.Minute + hold)},
		{"sensors/#", "ae-edge@1"}: {after: t0.Add(2 * time.Minute)},
		{"sensors/#", "ae-edge@3"}: {after: t0.Add(2 * time.Minute)},
	} {
		if got := res[id]; !got.after.Equal(want.after) || !got.hold.Equal(want.hold) {
			t.Errorf("%v: %+v, want %+v", id, got, want)
		}
	}
}
