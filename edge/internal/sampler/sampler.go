// Package sampler keeps a reservoir sample of the windows an edge agent
// judged normal, per stream, and uploads it to the cloud within a bandwidth
// budget (the profile's uplink.sample_budget), as wire.Sample messages on
// names.SampleSubject(agent) into the stream names.StreamSamples. The
// cloud's learning loop uses them to detect drift and to retrain the edge
// model.
//
// Sampling: for each stream, Offer draws a uniform sample of Windows of the
// windows offered since the last upload (Vitter's algorithm R: the n-th
// window replaces a random slot with probability Windows/n). Offer holds a
// mutex for a map lookup and, for the windows it keeps, a copy; it does not
// allocate once a stream's slots have grown.
//
// Budget: a token bucket in bytes, filled at Budget bytes per hour and
// holding at most Budget bytes (one hour's worth); it starts empty. Every
// Interval the sampler publishes the reservoirs round-robin over the
// streams (one window of each stream, then the second of each...) while the
// next message (its JSON payload plus its subject) fits the tokens, then
// starts new reservoirs; what did not fit is dropped and counted. So the
// bytes sent up to any time t after New never exceed Budget × t / 1h.
// Samples are best effort: they do not go through the outbox, and a failed
// publish (its bytes count against the budget) ends that upload.
//
// The package imports no training code; it is linked into outpost-edge.
package sampler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sort"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/outpost-iot/outpost/shared/names"
	"github.com/outpost-iot/outpost/shared/profile"
	"github.com/outpost-iot/outpost/shared/wire"
)

// Defaults.
const (
	// DefaultMaxStreams bounds the streams sampled at once; windows of
	// further streams are not sampled until the next upload.
	DefaultMaxStreams = 4096
	// DefaultPublishTimeout bounds one publish and its acknowledgement.
	DefaultPublishTimeout = 5 * time.Second
)

// Config configures a Sampler. The zero value samples nothing (Budget 0).
type Config struct {
	// Budget is the most bytes per hour uploaded; 0 turns sampling off
	// (Offer returns at once).
	Budget int64
	// Interval is how often the sample is uploaded. Default
	// profile.DefaultSampleInterval.
	Interval time.Duration
	// Windows is the reservoir size per stream. Default
	// profile.DefaultSampleWindows.
	Windows int
	// MaxStreams bounds the streams sampled between uploads. Default
	// DefaultMaxStreams.
	MaxStreams int
	// PublishTimeout bounds each publish. Default DefaultPublishTimeout.
	PublishTimeout time.Duration
	// ModelOf, if set, returns the model ("name@version") that judges
	// stream; it is called at upload, once per stream, and its answer sent
	// as wire.Sample.Model.
	ModelOf func(stream string) string
	// Seed seeds the sampling; 0 picks a random seed.
	Seed uint64
	// Now is the clock the budget is accounted with; default time.Now.
	Now func() time.Time
	// Logger; default slog.Default().
	Logger *slog.Logger
}

// ConfigFrom returns the configuration a profile's uplink section gives
// (defaults filled in by profile.Defaults).
func ConfigFrom(u profile.Uplink) Config {
	c := Config{Interval: u.SampleInterval, Windows: u.SampleWindows}
	if u.SampleBudget == nil {
		c.Budget = profile.DefaultSampleBudget
	} else {
		c.Budget = *u.SampleBudget
	}
	return c
}

func (c *Config) fill() {
	if c.Interval <= 0 {
		c.Interval = profile.DefaultSampleInterval
	}
	if c.Windows <= 0 {
		c.Windows = profile.DefaultSampleWindows
	}
	if c.MaxStreams <= 0 {
		c.MaxStreams = DefaultMaxStreams
	}
	if c.PublishTimeout <= 0 {
		c.PublishTimeout = DefaultPublishTimeout
	}
	if c.Seed == 0 {
		c.Seed = rand.Uint64()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Stats counts what a sampler did since New.
type Stats struct {
	// Offered is the windows offered; Sent the samples published and
	// acknowledged, SentBytes their bytes (payload and subject).
	Offered   uint64 `json:"offered"`
	Sent      uint64 `json:"sent"`
	SentBytes uint64 `json:"sent_bytes"`
	// OverBudget is the sampled windows dropped because the budget had no
	// room for them; Failed the publishes that failed.
	OverBudget uint64 `json:"over_budget"`
	Failed     uint64 `json:"failed"`
}

type slot struct {
	ts     time.Time
	window []float64
}

type reservoir struct {
	n     uint64
	slots []slot
}

// Sampler samples and uploads normal windows. Its methods are safe for
// concurrent use; a nil *Sampler ignores Offer.
type Sampler struct {
	cfg     Config
	agent   string
	subject string
	js      jetstream.JetStream

	mu      sync.Mutex
	rng     *rand.Rand
	res     map[string]*reservoir
	tokens  float64
	last    time.Time
	next    int // round-robin start over the sorted streams
	stats   Stats
	upload  sync.Mutex // one upload at a time
	stop    chan struct{}
	done    chan struct{}
	closeMu sync.Once
}

// New returns a sampler for agent that publishes on nc and, when the budget
// is not 0, uploads every Interval until Close.
func New(nc *nats.Conn, agent string, cfg Config) (*Sampler, error) {
	if err := names.ValidAgentID(agent); err != nil {
		return nil, fmt.Errorf("sampler: %w", err)
	}
	if cfg.Budget < 0 {
		return nil, fmt.Errorf("sampler: budget %d bytes per hour must not be negative", cfg.Budget)
	}
	if nc == nil {
		return nil, errors.New("sampler: no NATS connection")
	}
	cfg.fill()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("sampler: jetstream: %w", err)
	}
	s := &Sampler{
		cfg: cfg, agent: agent, subject: names.SampleSubject(agent), js: js,
		rng: newRand(cfg.Seed), res: map[string]*reservoir{},
		last: cfg.Now(), stop: make(chan struct{}), done: make(chan struct{}),
	}
	if cfg.Budget == 0 {
		close(s.done)
		return s, nil
	}
	go s.loop()
	return s, nil
}

func (s *Sampler) loop() {
	defer close(s.done)
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithCancel(context.Background())
			go func() {
				select {
				case <-s.stop:
					cancel()
				case <-ctx.Done():
				}
			}()
			if _, err := s.Upload(ctx); err != nil {
				s.cfg.Logger.Debug("sample upload", "err", err)
			}
			cancel()
		}
	}
}

// Close stops the uploads (what is sampled is dropped). It is safe to call
// more than once.
func (s *Sampler) Close() {
	if s == nil {
		return
	}
	s.closeMu.Do(func() { close(s.stop) })
	<-s.done
}

// Offer offers a window the agent judged normal (raw values, oldest first;
// ts is the time of its last reading). The sampler copies what it keeps.
func (s *Sampler) Offer(stream string, ts time.Time, window []float64) {
	if len(window) == 0 {
		return
	}
	s.OfferFunc(stream, ts, func(dst []float64) []float64 { return append(dst, window...) })
}

// OfferFunc is Offer for a caller whose window is not at hand as a slice
// (a ring buffer): fill is called only when the sampler keeps the window,
// with the sampler's lock held (it must be quick and must not call the
// sampler), and appends the window's values to dst and returns it. A
// window it does not keep costs a lock and a random number.
func (s *Sampler) OfferFunc(stream string, ts time.Time, fill func(dst []float64) []float64) {
	if s == nil || s.cfg.Budget == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.Offered++
	r := s.res[stream]
	if r == nil {
		if len(s.res) >= s.cfg.MaxStreams {
			return
		}
		r = &reservoir{slots: make([]slot, 0, s.cfg.Windows)}
		s.res[stream] = r
	}
	r.n++
	i := len(r.slots)
	if i < s.cfg.Windows {
		r.slots = append(r.slots, slot{})
	} else if i = int(s.rng.Uint64N(r.n)); i >= s.cfg.Windows {
		return
	}
	r.slots[i].ts = ts
	r.slots[i].window = fill(r.slots[i].window[:0])
}

// Stats returns the counts since New.
func (s *Sampler) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// Upload publishes what the budget allows of the current sample now and
// starts a new sample; the loop calls it every Interval. It returns how
// many samples it published.
func (s *Sampler) Upload(ctx context.Context) (int, error) {
	if s.cfg.Budget == 0 {
		return 0, nil
	}
	s.upload.Lock()
	defer s.upload.Unlock()
	s.mu.Lock()
	now := s.cfg.Now()
	if dt := now.Sub(s.last); dt > 0 {
		s.tokens = min(float64(s.cfg.Budget), s.tokens+float64(s.cfg.Budget)*dt.Hours())
	}
	s.last = now
	res := s.res
	s.res = map[string]*reservoir{}
	streams := make([]string, 0, len(res))
	for k := range res {
		streams = append(streams, k)
	}
	sort.Strings(streams)
	start := 0
	if len(streams) > 0 {
		start = s.next % len(streams)
		s.next++
	}
	s.mu.Unlock()

	total := 0
	models := map[string]string{}
	for stream, r := range res {
		total += len(r.slots)
		if s.cfg.ModelOf != nil {
			models[stream] = s.cfg.ModelOf(stream)
		}
	}
	sent := 0
	var err error
	defer func() {
		s.mu.Lock()
		s.stats.OverBudget += uint64(total - sent)
		s.mu.Unlock()
	}()
	for round := 0; ; round++ {
		more := false
		for k := range streams {
			stream := streams[(start+k)%len(streams)]
			r := res[stream]
			if round >= len(r.slots) {
				continue
			}
			more = true
			sl := r.slots[round]
			msg := wire.Sample{Agent: s.agent, Stream: stream, TS: sl.ts.UTC(), Window: sl.window, Offered: r.n, Sent: now.UTC(), Model: models[stream]}
			data, merr := json.Marshal(msg)
			if merr != nil {
				continue // NaN or Inf in the window: not JSON
			}
			size := float64(len(data) + len(s.subject))
			s.mu.Lock()
			if size > s.tokens {
				s.mu.Unlock()
				return sent, nil
			}
			s.tokens -= size
			s.mu.Unlock()
			pctx, cancel := context.WithTimeout(ctx, s.cfg.PublishTimeout)
			_, err = s.js.Publish(pctx, s.subject, data)
			cancel()
			s.mu.Lock()
			if err != nil {
				s.stats.Failed++
				s.mu.Unlock()
				return sent, fmt.Errorf("sampler: publish sample of %s: %w", stream, err)
			}
			s.stats.Sent++
			s.stats.SentBytes += uint64(size)
			s.mu.Unlock()
			sent++
		}
		if !more {
			return sent, nil
		}
	}
}

func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x73616d706c6572)) }
