// Package scorer is outpost-cloud's second stage: scorers that re-score the
// raw window an edge forwarded with an event, registered by name
// ("name@version"; the bare name selects the latest registered version) so
// that the service picks one by configuration.
//
// Built in:
//
//	forecast-cloud@1 the stock float TFLite forecaster (models/stock),
//	                 run by Model with the decision code of
//	                 models/detect/secondstage, which the evaluation's hybrid
//	                 mode measures: the window's last value scored against
//	                 the values before it, confirmed at or above 3 x the
//	                 model's low threshold. The default.
//	robust-zscore@1  the last value's distance from the median of the rest of
//	                 the window, in robust standard deviations (1.4826 x the
//	                 median absolute deviation, MAD); confirmed when it is at
//	                 least Options.Threshold (default 3.5, Iglewicz and
//	                 Hoaglin's cut-off for the modified z-score). A
//	                 statistic, not a learned model: it confirms a spike that
//	                 stands out of its own window and rejects a value the
//	                 window already explains.
//
// Other float models (a model pushed to the model store with --role cloud)
// are scorers through NewModelFiles.
//
// Video events (the edge's ae-video@N, carrying their buckets' features)
// go to the video second stage instead, whatever scorer is configured:
// WithVideo wraps the configured scorer in a ByModel that sends them to
// VideoModel running the stock float ae-video-cloud@1 (video.go); the
// verdict names that model. Video events without features (agents from
// before features) are decided by the configured scorer as before.
//
// Rule for events that cannot be re-scored (no window, or a window shorter
// than the scorer needs): the edge's kind decides: an anomaly (the edge
// score reached its high threshold) is confirmed, an uncertain event is
// rejected; the score is the edge's score and the verdict's Reason says
// which rule applied and why.
package scorer

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/outpost-iot/outpost/models/detect/secondstage"
	"github.com/outpost-iot/outpost/models/manifest"
	"github.com/outpost-iot/outpost/models/stock"
	"github.com/outpost-iot/outpost/shared/wire"
)

// Reasons given when the window is not re-scored.
const (
	ReasonNoWindow    = "no window: the edge kind decides (anomaly confirmed, uncertain rejected)"
	ReasonShortWindow = "window too short to re-score: the edge kind decides (anomaly confirmed, uncertain rejected)"
)

// MaxScore caps scores so they stay finite in JSON (a flat window with a
// different last value has an infinite robust z-score).
const MaxScore = 1e6

// Result is a scorer's decision on one event.
type Result struct {
	Decision wire.Decision
	Score    float64
	// Reason is set when the decision was not made by re-scoring.
	Reason string
	// Model is the "name@version" of the model that decided when it is
	// not the scorer's own Name (ByModel's video events); empty otherwise.
	Model string
}

// Scorer re-scores forwarded events. Implementations must be safe for
// concurrent use.
type Scorer interface {
	// Name is "name@version", reported in verdicts.
	Name() string
	// Score decides on ev.
	Score(ev wire.Event) Result
}

// Options configure a scorer; zero values mean the scorer's defaults.
type Options struct {
	// Threshold is the score at or above which an event is confirmed.
	Threshold float64
	// MinWindow is the fewest window values (before the last one) needed
	// to re-score.
	MinWindow int
}

// Constructor builds a scorer from options.
type Constructor func(Options) (Scorer, error)

// ErrUnknown is returned for a scorer name nobody registered.
var ErrUnknown = errors.New("scorer: unknown scorer")

// Registry maps scorer names to constructors.
type Registry struct {
	mu sync.Mutex
	m  map[string]Constructor
}

// ForecastCloudName is the name of the stock cloud model's scorer.
var ForecastCloudName = stockID(stock.Cloud)

// DefaultName is the scorer the service runs unless told otherwise.
var DefaultName = ForecastCloudName

// stockID is the "name@version" of an embedded stock model.
func stockID(name string) string {
	_, mj, err := stock.Files(name)
	if err != nil {
		panic(err) // the embedded files are part of the build
	}
	m, err := manifest.Parse(mj)
	if err != nil {
		panic(err)
	}
	return m.ID()
}

// NewRegistry returns a registry with the built-in scorers.
func NewRegistry() *Registry {
	r := &Registry{m: map[string]Constructor{}}
	_ = r.Register(ForecastCloudName, stockConstructor(stock.Cloud))
	_ = r.Register(RobustZName, NewRobustZ)
	return r
}

// Register adds a constructor under name ("name@version"); a name is
// registered once.
func (r *Registry) Register(name string, c Constructor) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.m[name]; ok {
		return fmt.Errorf("scorer: %q is already registered", name)
	}
	r.m[name] = c
	return nil
}

// Resolve returns the registered name that name selects: name itself, or
// for a bare name without "@version" its latest registered version.
func (r *Registry) Resolve(name string) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.m[name]; ok {
		return name, true
	}
	if strings.Contains(name, "@") {
		return "", false
	}
	best, bestV := "", -1
	for n := range r.m {
		base, ver, ok := strings.Cut(n, "@")
		if !ok || base != name {
			continue
		}
		v, err := strconv.Atoi(ver)
		if err == nil && v > bestV {
			best, bestV = n, v
		}
	}
	return best, best != ""
}

// New builds the scorer name selects (see Resolve).
func (r *Registry) New(name string, opts Options) (Scorer, error) {
	full, ok := r.Resolve(name)
	if !ok {
		return nil, fmt.Errorf("%w %q (known: %v)", ErrUnknown, name, r.Names())
	}
	r.mu.Lock()
	c := r.m[full]
	r.mu.Unlock()
	return c(opts)
}

// Names lists the registered names, sorted.
func (r *Registry) Names() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(r.m))
	for n := range r.m {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// RobustZName is the name of the robust z-score scorer.
const RobustZName = "robust-zscore@1"

// Defaults of robust-zscore@1.
const (
	DefaultRobustZThreshold = 3.5
	DefaultMinWindow        = 8
)

type robustZ struct {
	threshold float64
	minWindow int
	pool      sync.Pool
}

// NewRobustZ is the constructor of robust-zscore@1.
func NewRobustZ(o Options) (Scorer, error) {
	if o.Threshold < 0 || math.IsNaN(o.Threshold) {
		return nil, fmt.Errorf("scorer %s: threshold %v must be positive", RobustZName, o.Threshold)
	}
	if o.Threshold == 0 {
		o.Threshold = DefaultRobustZThreshold
	}
	if o.MinWindow < 0 {
		return nil, fmt.Errorf("scorer %s: min window %d must be positive", RobustZName, o.MinWindow)
	}
	if o.MinWindow == 0 {
		o.MinWindow = DefaultMinWindow
	}
	s := &robustZ{threshold: o.Threshold, minWindow: o.MinWindow}
	s.pool.New = func() any { b := make([]float64, 0, 256); return &b }
	return s, nil
}

func (s *robustZ) Name() string { return RobustZName }

// byEdgeKind is the rule for events that cannot be re-scored.
func byEdgeKind(ev wire.Event, reason string) Result {
	r := decided(ev.Score, ev.Kind == wire.KindAnomaly)
	r.Reason = reason
	return r
}

// decided is the Result of a score (made finite) and whether it confirms.
func decided(score float64, confirmed bool) Result {
	d := wire.Rejected
	if confirmed {
		d = wire.Confirmed
	}
	return Result{Decision: d, Score: finite(score)}
}

// unscored is the edge-kind Result of an event model could not score
// (what: "window", "features"), saying why; short says it for input
// shorter than the model needs (secondstage.ErrShortWindow).
func unscored(ev wire.Event, model, what, short string, err error) Result {
	reason := fmt.Sprintf("%s could not score the %s (%v): fallback %s decides", model, what, err, FallbackEdgeKind)
	if errors.Is(err, secondstage.ErrShortWindow) {
		reason = fmt.Sprintf("%s for %s (%v): fallback %s decides", short, model, err, FallbackEdgeKind)
	}
	return byEdgeKind(ev, reason)
}

func finite(f float64) float64 {
	switch {
	case math.IsNaN(f):
		return 0
	case f > MaxScore:
		return MaxScore
	case f < -MaxScore:
		return -MaxScore
	}
	return f
}

func (s *robustZ) Score(ev wire.Event) Result {
	w := ev.Window
	if len(w) == 0 {
		return byEdgeKind(ev, ReasonNoWindow)
	}
	rest, last := w[:len(w)-1], w[len(w)-1]
	if len(rest) < s.minWindow {
		return byEdgeKind(ev, ReasonShortWindow)
	}
	bp := s.pool.Get().(*[]float64)
	buf := append((*bp)[:0], rest...)
	med := median(buf)
	for i, v := range buf {
		buf[i] = math.Abs(v - med)
	}
	mad := median(buf)
	*bp = buf
	s.pool.Put(bp)
	dev := math.Abs(last - med)
	var z float64
	switch {
	case mad > 0:
		z = dev / (1.4826 * mad)
	case dev == 0:
		z = 0
	default:
		z = MaxScore // a flat window and a different last value
	}
	z = finite(z)
	return decided(z, z >= s.threshold)
}

// median sorts v in place and returns its median.
func median(v []float64) float64 {
	slices.Sort(v)
	n := len(v)
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}
