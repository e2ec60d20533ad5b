package sim

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// Defaults filled in for zero Config fields.
const (
	DefaultMQTTURL     = "tcp://127.0.0.1:1883"
	DefaultTopicPrefix = "sensors"
	DefaultSpikeSigma  = 10
	DefaultSpikeWindow = 60
	DefaultInflight    = 2000
	// MaxInflight keeps in-flight publishes below MQTT's 65535 packet ids.
	MaxInflight    = 60000
	DefaultTimeout = 10 * time.Second
)

// Time modes of the published timestamps.
const (
	// TimeNow shifts each series so that it starts at the replay's start and
	// advances at data pace (the clamped differences between rows), so with a
	// speed-up above 1 the timestamps run ahead of the wall clock. Timestamps
	// never go backwards, and a loop continues after the previous pass.
	TimeNow = "now"
	// TimeOriginal keeps the file's timestamps (repeated on every loop).
	TimeOriginal = "original"
)

// Config is a replay. Its zero value, given Files, replays each file once as
// its own device to DefaultMQTTURL at QoS 1, as fast as possible, with
// timestamps shifted to now.
type Config struct {
	MQTTURL  string // broker URL; default DefaultMQTTURL
	Username string // optional MQTT user name
	Password string // optional MQTT password
	ClientID string // default "sensorsim-<random>"

	Files  []string     // CSV files to replay (see FindCSV); required
	Strict bool         // fail on the first bad CSV line instead of skipping it
	Parse  ParseOptions // further parsing options; Strict overrides Parse.Strict

	// Devices is the number of devices; device i (id "dev-<i>") replays file
	// i mod len(Files). Zero means one device per file.
	Devices int
	// Sensor is the sensor name in every topic; default each file's base
	// name without .csv, made a valid topic token.
	Sensor      string
	TopicPrefix string // default DefaultTopicPrefix

	Speedup float64 // data seconds per wall second; 0 = as fast as possible
	Rate    float64 // cap on total messages per second across devices; 0 = none
	Time    string  // TimeNow (default) or TimeOriginal

	Spike       SpikeEvery // when to inject spikes; zero = never
	SpikeSigma  float64    // spike = mean + SpikeSigma x stddev; default DefaultSpikeSigma
	SpikeWindow int        // recent readings the statistics use; default DefaultSpikeWindow
	// SpikeStagger gives each device its own spike phase (a fixed
	// pseudo-random offset per device within Spike's period), instead of
	// every device spiking at the same reading.
	SpikeStagger bool

	QoS0     bool  // publish at QoS 0 instead of QoS 1
	Count    int64 // stop after this many readings in total; 0 = the whole files
	Loop     bool  // restart each file at its end (until Count or ctx)
	Inflight int   // publishes awaiting acknowledgement, across devices; default DefaultInflight

	Timeout time.Duration // connect and final-acknowledgement timeout; default DefaultTimeout
	// Log receives spike records, warnings and skipped lines; default
	// discards. The command gives it a JSON handler on stderr.
	Log *slog.Logger
}

func (c *Config) setDefaults() {
	if c.MQTTURL == "" {
		c.MQTTURL = DefaultMQTTURL
	}
	if c.ClientID == "" {
		var b [4]byte
		_, _ = rand.Read(b[:])
		c.ClientID = "sensorsim-" + hex.EncodeToString(b[:])
	}
	if c.TopicPrefix == "" {
		c.TopicPrefix = DefaultTopicPrefix
	}
	if c.Time == "" {
		c.Time = TimeNow
	}
	if c.SpikeSigma == 0 {
		c.SpikeSigma = DefaultSpikeSigma
	}
	if c.SpikeWindow == 0 {
		c.SpikeWindow = DefaultSpikeWindow
	}
	if c.Inflight == 0 {
		c.Inflight = DefaultInflight
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Log == nil {
		c.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.Strict {
		c.Parse.Strict = true
	}
}

// Validate reports the first invalid setting, naming its flag.
func (c *Config) Validate() error {
	switch {
	case len(c.Files) == 0:
		return errors.New("data: no CSV files")
	case c.Devices < 0:
		return errors.New("devices: must be >= 0")
	case c.Speedup < 0:
		return errors.New("speedup: must be >= 0")
	case c.Rate < 0:
		return errors.New("rate: must be >= 0")
	case c.Time != "" && c.Time != TimeNow && c.Time != TimeOriginal:
		return fmt.Errorf("time: %q must be %q or %q", c.Time, TimeNow, TimeOriginal)
	case c.SpikeSigma < 0:
		return errors.New("spike-sigma: must be >= 0")
	case c.SpikeWindow < 0:
		return errors.New("spike-window: must be >= 0")
	case c.Count < 0:
		return errors.New("count: must be >= 0")
	case c.Inflight < 0 || c.Inflight > MaxInflight:
		return fmt.Errorf("inflight: must be between 0 and %d", MaxInflight)
	case c.Sensor != "" && TopicToken(c.Sensor) != c.Sensor:
		return fmt.Errorf("sensor: %q is not a topic token (letters, digits, _ - .)", c.Sensor)
	}
	return nil
}

// Result is what a replay did.
type Result struct {
	Devices   int           // devices replayed
	Published int64         // readings published (acknowledged at QoS 1)
	Failed    int64         // publishes that returned an error
	Spikes    int64         // spikes injected
	Skipped   int           // bad CSV lines skipped
	Elapsed   time.Duration // wall time from connection to the last acknowledgement
}

// PerSecond is the publish rate.
func (r Result) PerSecond() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Published) / r.Elapsed.Seconds()
}

// device is one simulated device replaying one series.
type device struct {
	id      string
	sensor  string
	topic   string
	series  *Series
	offsets []time.Duration // data offsets of the rows
	step    time.Duration   // gap between passes when looping
	spk     *spiker
	keys    [][]byte // JSON-quoted column names (several value columns)
}

// load parses the configured files and builds the devices; it returns the
// number of bad lines skipped.
func load(cfg *Config) ([]*device, int, error) {
	series := make([]*Series, len(cfg.Files))
	skipped := 0
	for i, f := range cfg.Files {
		opts := cfg.Parse
		if opts.OnSkip == nil {
			n := 0
			opts.OnSkip = func(e *LineError) {
				if n++; n <= 10 {
					cfg.Log.Warn("skipped bad line", "file", e.Path, "line", e.Line, "error", e.Err.Error())
				}
			}
		}
		s, err := LoadCSV(f, opts)
		if err != nil {
			return nil, 0, err
		}
		skipped += s.Skipped
		series[i] = s
	}
	n := cfg.Devices
	if n == 0 {
		n = len(series)
	}
	devs := make([]*device, n)
	for i := range devs {
		s := series[i%len(series)]
		d := &device{id: "dev-" + strconv.Itoa(i), series: s, offsets: DataOffsets(s.Rows), step: TypicalStep(s.Rows)}
		d.sensor = cfg.Sensor
		if d.sensor == "" {
			d.sensor = TopicToken(s.Name)
		}
		d.topic = cfg.TopicPrefix + "/" + d.id + "/" + d.sensor
		if len(s.Columns) > 1 {
			for _, c := range s.Columns {
				k, _ := json.Marshal(c)
				d.keys = append(d.keys, k)
			}
		}
		if cfg.Spike.Enabled() {
			d.spk = newSpiker(cfg.Spike, cfg.SpikeSigma, cfg.SpikeWindow, len(s.Columns))
			if cfg.SpikeStagger {
				d.spk.stagger(i)
			}
		}
		devs[i] = d
	}
	return devs, skipped, nil
}

// AppendPayload appends the JSON reading {"ts": ..., "value": v} (one
// column) or {"ts": ..., "values": {"<col>": v, ...}} (several; keys are
// JSON-quoted column names) to b. ts is written as RFC 3339 in UTC.
func AppendPayload(b []byte, ts time.Time, keys [][]byte, vals []float64) []byte {
	b = append(b, `{"ts":"`...)
	b = ts.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	if len(keys) == 0 {
		b = append(b, `,"value":`...)
		b = strconv.AppendFloat(b, vals[0], 'g', -1, 64)
		return append(b, '}')
	}
	b = append(b, `,"values":{`...)
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, k...)
		b = append(b, ':')
		b = strconv.AppendFloat(b, vals[i], 'g', -1, 64)
	}
	return append(b, "}}"...)
}

// limiter spaces messages across goroutines to at most rate per second.
type limiter struct {
	mu    sync.Mutex
	every time.Duration
	next  time.Time
}

// wait blocks until the caller's slot; false if ctx ended first.
func (l *limiter) wait(ctx context.Context) bool {
	if l == nil {
		return ctx.Err() == nil
	}
	l.mu.Lock()
	now := time.Now()
	if l.next.Before(now) {
		l.next = now
	}
	slot := l.next
	l.next = l.next.Add(l.every)
	l.mu.Unlock()
	return sleepUntil(ctx, slot)
}

// sleepUntil waits for t; false if ctx ended first.
func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// run is one replay in progress.
type run struct {
	cfg    *Config
	client mqtt.Client
	start  time.Time // pacing origin
	tsBase time.Time // TimeNow timestamps: start in UTC, whole milliseconds
	lim    *limiter
	qos    byte
	window int // per device in-flight publishes

	issued    atomic.Int64
	published atomic.Int64
	failed    atomic.Int64
	spikes    atomic.Int64
	firstErr  sync.Once
	err       error
}

// Run connects to the broker and replays the configured files until they end
// (or, with Loop, until Count readings or ctx ends). Cancelling ctx stops the
// replay cleanly: readings already handed to the client are acknowledged
// (within Timeout) before it disconnects. The error is nil after a cancel.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if err := cfg.Validate(); err != nil {
		return Result{}, err
	}
	cfg.setDefaults()
	devs, skipped, err := load(&cfg)
	if err != nil {
		return Result{}, err
	}
	res := Result{Devices: len(devs), Skipped: skipped}

	r := &run{cfg: &cfg, qos: 1}
	if cfg.QoS0 {
		r.qos = 0
	}
	r.window = max(1, cfg.Inflight/len(devs))
	if cfg.Rate > 0 {
		r.lim = &limiter{every: time.Duration(float64(time.Second) / cfg.Rate)}
	}
	opts := mqtt.NewClientOptions().
		AddBroker(cfg.MQTTURL).
		SetClientID(cfg.ClientID).
		SetUsername(cfg.Username).
		SetPassword(cfg.Password).
		SetCleanSession(true).
		SetAutoReconnect(true).
		SetMaxReconnectInterval(5 * time.Second).
		SetConnectTimeout(cfg.Timeout).
		SetKeepAlive(30 * time.Second).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			cfg.Log.Warn("mqtt connection lost; reconnecting", "error", err.Error())
		}).
		SetReconnectingHandler(func(mqtt.Client, *mqtt.ClientOptions) {
			cfg.Log.Info("mqtt reconnecting", "broker", cfg.MQTTURL)
		})
	r.client = mqtt.NewClient(opts)
	tok := r.client.Connect()
	select {
	case <-tok.Done():
	case <-time.After(cfg.Timeout):
		return res, fmt.Errorf("connect to %s: no answer within %v", cfg.MQTTURL, cfg.Timeout)
	case <-ctx.Done():
		return res, nil
	}
	if err := tok.Error(); err != nil {
		return res, fmt.Errorf("connect to %s: %w", cfg.MQTTURL, err)
	}
	defer r.client.Disconnect(250)

	r.start = time.Now()
	r.tsBase = r.start.UTC().Truncate(time.Millisecond)
	var wg sync.WaitGroup
	for _, d := range devs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.replay(ctx, d)
		}()
	}
	wg.Wait()
	res.Elapsed = time.Since(r.start)
	res.Published = r.published.Load()
	res.Failed = r.failed.Load()
	res.Spikes = r.spikes.Load()
	return res, r.err
}

// fail records the first publish error.
func (r *run) fail(err error) {
	r.failed.Add(1)
	r.firstErr.Do(func() { r.err = err })
}

// pub is a publish awaiting its acknowledgement.
type pub struct {
	tok     mqtt.Token
	topic   string
	payload []byte
}

// settle counts publishes as they complete, in publish order, until acks is
// closed. A publish that fails (the connection broke while it was written)
// is sent again once paho has reconnected, for up to Timeout; at-least-once
// may then repeat or reorder a few readings. After ctx ends it still waits up
// to Timeout in all, so nothing already handed to the client is left
// unaccounted.
func (r *run) settle(ctx context.Context, acks <-chan pub) {
	var stop <-chan time.Time // set when ctx ends: the last moment to wait
	for p := range acks {
		r.settleOne(ctx, p, &stop)
	}
}

// settleOne waits for one publish, sending it again after a failure.
func (r *run) settleOne(ctx context.Context, p pub, stop *<-chan time.Time) {
	var retryUntil time.Time
	for {
		select {
		case <-p.tok.Done():
		case <-ctx.Done():
			if *stop == nil {
				*stop = time.After(r.cfg.Timeout)
			}
			select {
			case <-p.tok.Done():
			case <-*stop:
				r.fail(fmt.Errorf("publish to %s: no acknowledgement within %v after stop", p.topic, r.cfg.Timeout))
				return
			}
		}
		err := p.tok.Error()
		if err == nil {
			r.published.Add(1)
			return
		}
		if retryUntil.IsZero() {
			retryUntil = time.Now().Add(r.cfg.Timeout)
		}
		if ctx.Err() != nil || !r.awaitConnection(ctx, retryUntil) {
			r.fail(fmt.Errorf("publish to %s: %w", p.topic, err))
			return
		}
		p.tok = r.client.Publish(p.topic, r.qos, false, p.payload)
	}
}

// awaitConnection waits until the client is connected; false if until
// passes or ctx ends first.
func (r *run) awaitConnection(ctx context.Context, until time.Time) bool {
	for !r.client.IsConnectionOpen() {
		if time.Now().After(until) || !sleepUntil(ctx, time.Now().Add(20*time.Millisecond)) {
			return false
		}
	}
	return true
}

// replay publishes one device's series. Its in-flight publishes are bounded
// by r.window: a second goroutine waits on their tokens in order while this
// one keeps publishing, so the window stays full.
func (r *run) replay(ctx context.Context, d *device) {
	cfg := r.cfg
	acks := make(chan pub, r.window)
	settled := make(chan struct{})
	go func() {
		defer close(settled)
		r.settle(ctx, acks)
	}()
	defer func() {
		close(acks)
		<-settled
	}()
	var buf []byte
	spiked := make([]float64, len(d.series.Columns))
	var base time.Duration // data offset of the current pass
	span := d.offsets[len(d.offsets)-1] + d.step
	for {
		for i, row := range d.series.Rows {
			if ctx.Err() != nil {
				return
			}
			if cfg.Count > 0 && r.issued.Add(1) > cfg.Count {
				return
			}
			data := base + d.offsets[i]
			if !sleepUntil(ctx, r.start.Add(WallOffset(data, cfg.Speedup))) || !r.lim.wait(ctx) {
				return
			}
			ts := row.T
			if cfg.Time == TimeNow {
				ts = r.tsBase.Add(data)
			}
			vals := row.Values
			if d.spk != nil {
				if d.spk.due(time.Since(r.start)) {
					vals = r.inject(d, ts, row.Values, spiked)
				}
				d.spk.observe(row.Values)
			}
			buf = AppendPayload(buf[:0], ts, d.keys, vals)
			// paho keeps the payload until sent; give it its own copy.
			payload := append([]byte(nil), buf...)
			acks <- pub{r.client.Publish(d.topic, r.qos, false, payload), d.topic, payload}
		}
		if !cfg.Loop {
			return
		}
		base += span
	}
}

// inject fills out with the spiked values of a reading and logs the spike.
func (r *run) inject(d *device, ts time.Time, vals, out []float64) []float64 {
	attrs := []any{"device", d.id, "sensor", d.sensor, "topic", d.topic, "ts", ts.UTC().Format(time.RFC3339Nano)}
	var cols []any
	for c := range vals {
		v, mean, std := d.spk.spike(c)
		out[c] = v
		if len(vals) == 1 {
			attrs = append(attrs, "value", v, "original", vals[c], "mean", mean, "stddev", std)
		} else {
			cols = append(cols, slog.Group(d.series.Columns[c], "value", v, "original", vals[c], "mean", mean, "stddev", std))
		}
	}
	if cols != nil {
		attrs = append(attrs, slog.Group("values", cols...))
	}
	r.spikes.Add(1)
	r.cfg.Log.Info("spike", attrs...)
	return out
}
