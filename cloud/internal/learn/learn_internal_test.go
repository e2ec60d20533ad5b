package learn

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

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
	if rep, _ := l.drift(st); rep != nil {
		t.Fatalf("drift reported without a change: %+v", rep)
	}
	st.recent = nil
	for _, w := range after[:48] {
		m, s := meanStd(w)
		st.recent = append(st.recent, &win{vals: w, mean: m, std: s, err: math.NaN()})
	}
	rep, _ := l.drift(st)
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

// arSeries returns n readings of a stationary sensor: 10 plus an AR(1)
// process of coefficient phi and unit variance, a slow sine (period 300
// readings, amplitude 0.5) and white noise 0.1. From reading from on, the
// level moves by shift and the variation (AR, sine and noise) is scaled by
// scale.
func arSeries(seed uint64, n int, phi float64, from int, shift, scale float64) []float64 {
	rng := rand.New(rand.NewPCG(seed, 7))
	out := make([]float64, n)
	y := rng.NormFloat64()
	s := math.Sqrt(1 - phi*phi)
	for t := range out {
		y = phi*y + s*rng.NormFloat64()
		v := y + 0.5*math.Sin(2*math.Pi*float64(t)/300) + 0.1*rng.NormFloat64()
		if t >= from {
			v = shift + scale*v
		}
		out[t] = 10 + v
	}
	return out
}

// slide samples windows of w readings of xs as an agent's sampler does:
// sliding windows at random positions, on average spacing readings apart
// (so with spacing < w neighbours overlap); each with the index of its
// last reading.
func slide(seed uint64, xs []float64, spacing, w int) (wins [][]float64, ends []int) {
	rng := rand.New(rand.NewPCG(seed, 9))
	for end := w; end <= len(xs); end += 1 + rng.IntN(2*spacing) {
		wins, ends = append(wins, xs[end-w:end]), append(ends, end)
	}
	return wins, ends
}

// feed gives the windows to a fresh stream as onSample does and returns
// how often drift was found (the stream starts over after each) and
// whether the earlier rule (a check on every window, counting every
// window as an independent draw) would have found drift on the mean or
// deviation.
func feed(t *testing.T, champ *net, wins [][]float64, ends []int) (fired int, naive bool) {
	t.Helper()
	l := &Learner{nets: map[string]*net{champ.m.ID(): champ}}
	l.cfg.fill()
	st := &stream{name: "s", champion: champ.m.ID()}
	base := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	for i, w := range wins {
		if rep, _ := l.add(st, base.Add(time.Duration(ends[i])*time.Second), w); rep != nil {
			fired++
			st.ref, st.recent = nil, nil
			continue
		}
		if naive || len(st.recent) < l.cfg.MinRecent {
			continue
		}
		for _, f := range []func(*win) float64{func(w *win) float64 { return w.mean }, func(w *win) float64 { return w.std }} {
			var a, b []float64
			for _, w := range st.ref {
				a = append(a, f(w))
			}
			for _, w := range st.recent {
				b = append(b, f(w))
			}
			naive = naive || KS(a, b) > KSCritical(l.cfg.Alpha, len(a), len(b))
		}
	}
	return fired, naive
}

// TestDriftStationaryAutocorrelated: on a stationary but autocorrelated
// sensor, sampled as overlapping (spacing 5) or close (spacing 20) sliding
// windows, the drift check stays quiet over hundreds of windows (dozens of
// checks) for every seed, where counting windows as independent draws
// fired on most; a level shift of 4 and a tripled variation of the same
// sensor are found.
func TestDriftStationaryAutocorrelated(t *testing.T) {
	champ := stockNet(t)
	const n = 64*20 + 700*20
	naives, cases := 0, 0
	for _, spacing := range []int{5, 20} {
		for seed := uint64(1); seed <= 5; seed++ {
			wins, ends := slide(seed, arSeries(seed, n, 0.98, n, 0, 1), spacing, 32)
			fired, naive := feed(t, champ, wins, ends)
			if fired > 0 {
				t.Errorf("spacing %d seed %d: drift found %d times in %d windows of a stationary series", spacing, seed, fired, len(wins))
			}
			cases++
			if naive {
				naives++
			}
		}
	}
	t.Logf("the earlier rule fired on %d of %d stationary series", naives, cases)
	if naives < cases/2 {
		t.Fatalf("the series are too easy: the earlier rule fired on only %d of %d", naives, cases)
	}
	from := 64*20 + 100 // after the reference
	for seed := uint64(1); seed <= 5; seed++ {
		for _, c := range []struct {
			name         string
			shift, scale float64
		}{{"level shift", 4, 1}, {"variance shift", 0, 3}} {
			wins, ends := slide(seed, arSeries(seed, n, 0.98, from, c.shift, c.scale), 20, 32)
			if fired, _ := feed(t, champ, wins, ends); fired == 0 {
				t.Errorf("seed %d: %s not found", seed, c.name)
			}
		}
	}
}

// TestEffective: the effective size of independent draws is about their
// number, of an AR(1) series about n(1-φ)/(1+φ), of a constant n.
func TestEffective(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	iid := make([]float64, 400)
	for i := range iid {
		iid[i] = rng.NormFloat64()
	}
	if e := Effective(iid); e < 300 || e > 400 {
		t.Errorf("Effective(400 independent draws) = %.1f", e)
	}
	ar := make([]float64, 4000)
	y := 0.0
	for i := range ar {
		y = 0.8*y + rng.NormFloat64()
		ar[i] = y
	}
	// n(1-φ)/(1+φ) = 4000/9 = 444.
	if e := Effective(ar); e < 300 || e > 600 {
		t.Errorf("Effective(AR(1) φ=0.8, 4000) = %.1f, want about 444", e)
	}
	if e := Effective([]float64{2, 2, 2, 2, 2}); e != 5 {
		t.Errorf("Effective(constant) = %g", e)
	}
}

// TestSummaryDriftStationaryAutocorrelated: the Page-Hinkley test on the
// summary means of a stationary autocorrelated sensor (per summary the
// mean of 60 readings) stays quiet for every seed, where the earlier rule
// (10 reference summaries, their plain deviation) fired on some; a level
// shift of 4 is found.
func TestSummaryDriftStationaryAutocorrelated(t *testing.T) {
	const per, n = 60, 300
	run := func(seed uint64, shift float64) (fired, plain bool) {
		l := &Learner{streams: map[string]*stream{}, jobs: make(chan job, 4)}
		l.cfg.fill()
		st := &stream{name: "s", champion: "ae-edge@1", key: "*"}
		for _, w := range regime(false, l.cfg.MinRecent, 32, 5) {
			st.recent = append(st.recent, &win{vals: w})
		}
		l.streams["s"] = st
		xs := arSeries(seed, n*per, 0.98, (DefaultRefSummaries+20)*per, shift, 1)
		var ref []float64
		var naive *PageHinkley
		for i := 0; i+per <= len(xs); i += per {
			m, _ := meanStd(xs[i : i+per])
			b, _ := json.Marshal(wire.Summary{Agent: "gw-1", Streams: []wire.StreamSummary{{Stream: "s", Count: per, Mean: m}}})
			l.onSummary(b)
			if len(ref) < 10 { // the earlier rule: 10 summaries, plain deviation
				ref = append(ref, m)
				if len(ref) == 10 {
					mean, sd := meanStd(ref)
					naive = &PageHinkley{Mean: mean, Std: sd, Delta: 1, Lambda: 20}
				}
			} else if _, d := naive.Add(m); d {
				plain = true
			}
		}
		return len(l.jobs) > 0, plain
	}
	plains := 0
	for seed := uint64(1); seed <= 10; seed++ {
		fired, plain := run(seed, 0)
		if fired {
			t.Errorf("seed %d: drift on the summaries of a stationary series", seed)
		}
		if plain {
			plains++
		}
		if fired, _ := run(seed, 4); !fired {
			t.Errorf("seed %d: a level shift of 4 not found", seed)
		}
	}
	t.Logf("the earlier rule fired on %d of 10 stationary series", plains)
	if plains == 0 {
		t.Fatal("the series are too easy: the earlier rule never fired")
	}
}
