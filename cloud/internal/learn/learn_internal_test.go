package learn

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/outpost-iot/outpost/cloud/internal/api"
	"github.com/outpost-iot/outpost/models/manifest"
	"github.com/outpost-iot/outpost/models/stock"
	"github.com/outpost-iot/outpost/models/train"
	"github.com/outpost-iot/outpost/shared/wire"
)

// regime returns n windows of w consecutive readings of a synthetic
// sensor: before the drift a slow sine (period 16) around 10 with noise
// 0.1; after it a fast sawtooth (period 5) around 25, three times the
// amplitude, with noise 0.3.
func regime(after bool, n, w int, seed uint64) [][]float64 {
	rng := rand.New(rand.NewPCG(seed, 1))
	var out [][]float64
	t := 0
	for k := 0; k < n; k++ {
		win := make([]float64, w)
		t += rng.IntN(50) // windows come from anywhere in the stream
		for i := range win {
			x := float64(t + i)
			if after {
				win[i] = 25 + 3*(math.Mod(x, 5)/2.5-1) + 0.3*rng.NormFloat64()
			} else {
				win[i] = 10 + math.Sin(2*math.Pi*x/16) + 0.1*rng.NormFloat64()
			}
		}
		out = append(out, win)
	}
	return out
}

// spike puts an anomaly into the last readings of each window.
func spike(ws [][]float64) [][]float64 {
	var out [][]float64
	for _, w := range ws {
		c := append([]float64(nil), w...)
		for i := len(c) - 4; i < len(c); i++ {
			c[i] += 12
		}
		out = append(out, c)
	}
	return out
}

func stockNet(t *testing.T) *net {
	t.Helper()
	model, mj, err := stock.Files(stock.Edge)
	if err != nil {
		t.Fatal(err)
	}
	m, err := manifest.Parse(mj)
	if err != nil {
		t.Fatal(err)
	}
	n, err := newNet(m, model)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestKS(t *testing.T) {
	a := []float64{1, 2, 3, 4}
	if d := KS(a, a); d != 0 {
		t.Fatalf("KS of a sample with itself = %g", d)
	}
	if d := KS(a, []float64{5, 6, 7}); d != 1 {
		t.Fatalf("KS of disjoint samples = %g, want 1", d)
	}
	// Hand-computed: F_a and F_b at 1,2,3,4,5: a {1,3,5}, b {2,4}: the
	// distances are 1/3, 1/6, 1/6, 1/3, 0 → 1/3.
	if d := KS([]float64{1, 3, 5}, []float64{2, 4}); math.Abs(d-1.0/3) > 1e-12 {
		t.Fatalf("KS = %g, want 1/3", d)
	}
	// c(0.05) = 1.358 for n = m = 100: 1.358·sqrt(2/100) = 0.192.
	if c := KSCritical(0.05, 100, 100); math.Abs(c-0.19206) > 1e-4 {
		t.Fatalf("KSCritical(0.05, 100, 100) = %g", c)
	}
}

func TestPageHinkley(t *testing.T) {
	p := &PageHinkley{Mean: 10, Std: 1, Delta: 1, Lambda: 20}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 1000; i++ {
		if _, drift := p.Add(10 + rng.NormFloat64()); drift {
			t.Fatalf("drift on a stationary series at %d", i)
		}
	}
	n := 0
	for ; n < 100; n++ {
		if _, drift := p.Add(13 + rng.NormFloat64()); drift {
			break
		}
	}
	if n >= 15 {
		t.Fatalf("a 3σ shift took %d readings to detect", n)
	}
}

func TestDriftAndChallenger(t *testing.T) {
	champ := stockNet(t)
	before, after := regime(false, 64, 32, 1), regime(true, 96, 32, 2)
	l := &Learner{cfg: Config{}, nets: map[string]*net{champ.m.ID(): champ}}
	l.cfg.fill()
	st := &stream{name: "s", champion: champ.m.ID()}
	for _, w := range before {
		m, s := meanStd(w)
		st.ref = append(st.ref, &win{vals: w, mean: m, std: s, err: math.NaN()})
	}
	for _, w := range regime(false, 48, 32, 3) {
		m, s := meanStd(w)
		st.recent = append(st.recent, &win{vals: w, mean: m, std: s, err: math.NaN()})
	}
	if rep := l.drift(st); rep != nil {
		t.Fatalf("drift reported without a change: %+v", rep)
	}
	st.recent = nil
	for _, w := range after[:48] {
		m, s := meanStd(w)
		st.recent = append(st.recent, &win{vals: w, mean: m, std: s, err: math.NaN()})
	}
	rep := l.drift(st)
	if rep == nil || rep.Test != "ks" || rep.Statistic <= rep.Critical {
		t.Fatalf("no drift after the level, variance and shape changed: %+v", rep)
	}
	t.Logf("drift: %+v", rep)

	ch, err := trainChallenger(champ.m, 2, after[:72], 1, l.cfg.Fit)
	if err != nil {
		t.Fatal(err)
	}
	if ch.m.ID() != "ae-edge@2" || ch.m.Check(ch.model) != nil || ch.m.Role != manifest.RoleEdgeInt8 {
		t.Fatalf("challenger manifest %+v", ch.m)
	}
	chNet, err := newNet(ch.m, ch.model)
	if err != nil {
		t.Fatal(err)
	}
	held := after[72:]
	cmp := compare(champ, chNet, vals(st.ref), held, spike(held), l.cfg.Margin)
	t.Logf("%s", reason(cmp, l.cfg.Margin))
	if !cmp.Better || cmp.Normal != len(held) || cmp.Confirmed != len(held) {
		t.Fatalf("the challenger trained on the new regime is not better: %+v", cmp)
	}
	// The same rule rejects a challenger trained on the old regime.
	old, err := trainChallenger(champ.m, 3, before, 1, train.Config{Epochs: 20, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	oldNet, err := newNet(old.m, old.model)
	if err != nil {
		t.Fatal(err)
	}
	if c := compare(champ, oldNet, vals(st.ref), held, spike(held), l.cfg.Margin); c.Better {
		t.Errorf("a challenger trained before the drift was judged better: %s", reason(c, l.cfg.Margin))
	}
}

func TestSummaryDriftQueuesChallenger(t *testing.T) {
	l := &Learner{streams: map[string]*stream{}, jobs: make(chan job, 4)}
	l.cfg.fill()
	st := &stream{name: "s", champion: "ae-edge@1", key: "*"}
	for _, w := range regime(false, l.cfg.MinRecent, 32, 5) {
		st.recent = append(st.recent, &win{vals: w})
	}
	l.streams["s"] = st
	summary := func(mean float64) []byte {
		b, _ := json.Marshal(wire.Summary{Agent: "gw-1", Streams: []wire.StreamSummary{{Stream: "s", Count: 60, Mean: mean}, {Stream: "unknown", Count: 1, Mean: 1e9}}})
		return b
	}
	rng := rand.New(rand.NewPCG(4, 4))
	for i := 0; i < 200; i++ {
		l.onSummary(summary(10 + 0.05*rng.NormFloat64()))
	}
	if len(l.jobs) != 0 || st.busy {
		t.Fatal("drift on stationary summaries")
	}
	for i := 0; i < 5 && len(l.jobs) == 0; i++ {
		l.onSummary(summary(12))
	}
	select {
	case j := <-l.jobs:
		if j.stream != "s" || j.trigger != "drift" || j.drift.Test != "page-hinkley" || j.drift.Feature != "summary_mean" || !st.busy {
			t.Fatalf("job %+v", j)
		}
	default:
		t.Fatal("a level shift of the summary means queued no challenger")
	}
}

func TestTargets(t *testing.T) {
	dev := func(id, group, model string) api.Device {
		return api.Device{ID: id, Group: group, Models: map[string]string{"*": model}}
	}
	for _, c := range []struct {
		devs []api.Device
		want string
	}{
		{[]api.Device{dev("a", "", "m@1"), dev("b", "", "m@1")}, "all"},
		{[]api.Device{dev("a", "g", "m@1"), dev("b", "g", "m@1"), dev("c", "h", "x@1")}, "group=g"},
		{[]api.Device{dev("a", "g", "m@1"), dev("b", "g", "x@1"), dev("c", "h", "x@1")}, "device=a"},
		{[]api.Device{dev("a", "g", "m@1"), dev("b", "g", "m@1"), dev("c", "g", "x@1")}, ""},
		{[]api.Device{dev("a", "g", "x@1")}, ""},
	} {
		got, err := Targets(c.devs, "*", "m@1")
		if got != c.want || (err != nil) != (c.want == "") {
			t.Errorf("%v: got %q, %v; want %q", c.devs, got, err, c.want)
		}
	}
}

// TestPeers: a challenger is trained on the windows of every stream whose
// champion runs under the same desired-models key, the triggering stream
// first.
func TestPeers(t *testing.T) {
	l := &Learner{streams: map[string]*stream{}}
	for _, s := range []*stream{
		{name: "sensors/c", key: "sensors/#", champion: "ae-edge@1"},
		{name: "sensors/a", key: "sensors/#", champion: "ae-edge@1"},
		{name: "sensors/b", key: "sensors/#", champion: "ae-edge@1"},
		{name: "sensors/d", key: "sensors/#", champion: "ae-edge@2"},
		{name: "pumps/e", key: "*", champion: "ae-edge@1"},
	} {
		l.streams[s.name] = s
	}
	var got []string
	for _, p := range l.peers(l.streams["sensors/b"]) {
		got = append(got, p.name)
	}
	if want := []string{"sensors/b", "sensors/a", "sensors/c"}; !slices.Equal(got, want) {
		t.Fatalf("peers of sensors/b = %v, want %v", got, want)
	}
	if p := l.peers(l.streams["pumps/e"]); len(p) != 1 {
		t.Fatalf("pumps/e has peers under another key: %d", len(p))
	}
}

// TestThin: a training set over the bound keeps evenly spaced examples.
func TestThin(t *testing.T) {
	var xs [][]float64
	for i := 0; i < 10; i++ {
		xs = append(xs, []float64{float64(i)})
	}
	if got := thin(xs, 20); len(got) != 10 {
		t.Fatalf("thin below the bound changed the set: %v", got)
	}
	var got []float64
	for _, x := range thin(xs, 4) {
		got = append(got, x[0])
	}
	if want := []float64{0, 2, 5, 7}; !slices.Equal(got, want) {
		t.Fatalf("thin(10 → 4) = %v, want %v", got, want)
	}
}
