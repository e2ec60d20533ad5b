// Package profile is the firmware-profile schema: the YAML file that tells an
// outpost-edge agent what to subscribe to, how to decode it, how to score it,
// where to keep what must reach the cloud and where to send it.
//
// Every struct's zero value means "use the default"; Defaults fills all
// defaults in one step. Parse and Load read a profile, rejecting unknown keys;
// Validate returns every problem at once, each naming its YAML path (and the
// line, when the profile came from YAML).
package profile

import (
	"fmt"
	"os"
	"time"

	"go.yaml.in/yaml/v3"
)

// Default values filled in by Defaults.
const (
	DefaultHeartbeat       = 5 * time.Second
	DefaultQoS             = 1
	DefaultDecoder         = "json"
	DefaultScorer          = "zscore"
	DefaultWindow          = 120
	DefaultLow             = 4.0
	DefaultHigh            = 6.0
	DefaultCooldown        = 20
	DefaultSummaryInterval = time.Minute
	DefaultOutboxMaxBytes  = 64 << 20
	DefaultDataDir         = "/var/lib/outpost-edge"
	DefaultNATSURL         = "nats://127.0.0.1:4222"
	DefaultStreamPrefix    = "{topic}"
	DefaultVideoBucket     = time.Second
	// DefaultSpanWindow is the sample cap of a window by time span
	// (window_span) when window is not set.
	DefaultSpanWindow = 1000
	// DefaultSpanWarmup is the warm-up of a window by time span when
	// warmup is not set (at most the window).
	DefaultSpanWarmup = 30
	DefaultMaxFill    = 100
	DefaultGapFactor  = 1.5
	// DefaultModel is the model of a stream scored by a model (scorer:
	// model) when model is not set: the stock int8 edge model.
	DefaultModel = "ae-edge"
	// DefaultSampleBudget is uplink.sample_budget's default: 32 KiB of
	// sampled normal windows per hour (about 50 windows of 32 readings).
	DefaultSampleBudget = 32 << 10
	// DefaultSampleInterval is how often sampled windows are uploaded.
	DefaultSampleInterval = 10 * time.Minute
	// DefaultSampleWindows is the reservoir size per stream.
	DefaultSampleWindows = 8
)

// DefaultCheckpointInterval is how often stream state is saved
// (Profile.CheckpointInterval).
const DefaultCheckpointInterval = time.Second

// GapFills are the gap_fill values the schema accepts ("" leaves gaps).
var GapFills = []string{"hold", "linear", "missing"}

// Normalizations are the normalize values the schema accepts.
var Normalizations = []string{"none", "window", "online", "manifest"}

// DefaultVideoClasses are the object classes the video decoder counts by
// default (COCO names); other classes are counted as "other".
var DefaultVideoClasses = []string{"person", "car", "bicycle", "motorcycle", "bus", "truck"}

// Profile is one firmware profile.
type Profile struct {
	// Name identifies the profile in the agent's reported state, e.g.
	// "generic-sensor". Default: empty.
	Name string `yaml:"name"`
	// Revision is the profile's revision, reported in state. Default 0.
	Revision int64 `yaml:"revision"`
	// Agent describes the agent itself.
	Agent Agent `yaml:"agent"`
	// MQTT is where readings come from.
	MQTT MQTT `yaml:"mqtt"`
	// NATS is where events, summaries and state go.
	NATS NATS `yaml:"nats"`
	// DataDir holds the outbox file. Default DefaultDataDir.
	DataDir string `yaml:"data_dir"`
	// Outbox bounds what waits for the uplink.
	Outbox Outbox `yaml:"outbox"`
	// Streams configure detection; the first entry whose Match filter matches
	// a stream id configures that stream. Streams matched by no entry use the
	// defaults. Default: one entry matching "#".
	Streams []Stream `yaml:"streams"`
	// SummaryInterval is how often per-stream summaries are committed to the
	// outbox. Default DefaultSummaryInterval.
	SummaryInterval time.Duration `yaml:"summary_interval"`
	// CheckpointInterval is how often the state of the streams that took
	// readings (windows, running statistics, hysteresis) is saved in the
	// outbox file, so that a restarted agent resumes detection at once. A
	// restart loses what the streams learnt since the last checkpoint (a
	// gap in their windows, filled by their gap rule, or a new warm-up
	// when it is longer than the gap limit); a longer interval writes less
	// to the gateway's flash. Between 100ms and 1h. Default
	// DefaultCheckpointInterval.
	CheckpointInterval time.Duration `yaml:"checkpoint_interval"`
	// Metrics configures the Prometheus endpoint.
	Metrics Metrics `yaml:"metrics"`
	// Uplink configures optional uploads beside events and summaries.
	Uplink Uplink `yaml:"uplink"`

	// lines maps YAML paths to the line they were read from.
	lines map[string]int
}

// Agent describes the agent.
type Agent struct {
	// ID is the agent id: one NATS subject token (names.ValidAgentID). It is
	// required, from the profile or from the command line.
	ID string `yaml:"id"`
	// Group is the fleet group the agent belongs to. Optional.
	Group string `yaml:"group"`
	// Heartbeat is how often the agent publishes its state. Default 5s.
	Heartbeat time.Duration `yaml:"heartbeat"`
}

// MQTT says where readings come from: an external broker (URL) or a broker
// embedded in the agent (Embedded); exactly one of the two.
type MQTT struct {
	// URL of an external broker, e.g. "tcp://127.0.0.1:1883".
	URL string `yaml:"url"`
	// Embedded starts an MQTT broker inside the agent.
	Embedded *Embedded `yaml:"embedded"`
	// ClientID of the agent's MQTT session. Default "outpost-edge-<agent id>".
	ClientID string `yaml:"client_id"`
	// Username and Password the agent's client uses against an external
	// broker. With an embedded broker the embedded credentials are used.
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// QoS of the agent's subscriptions: 0 or 1. Default 1. A nil QoS means
	// the default so that 0 can be chosen explicitly.
	QoS *int `yaml:"qos"`
	// Topics to subscribe to. Default: "sensors/+/+" with the json decoder.
	Topics []Topic `yaml:"topics"`
	// TLS of an external broker at an ssl://, tls://, mqtts:// or wss://
	// URL. Default (nil): the system's roots, no client certificate.
	TLS *MQTTTLS `yaml:"tls"`
	// KeepAlive is the MQTT keep-alive interval (whole seconds, 1s to
	// 65535s): the client pings at half of it and drops a connection whose
	// broker stays silent. Default 30s.
	KeepAlive time.Duration `yaml:"keepalive"`
	// MaxPacket is the largest MQTT packet the agent reads, in bytes; a
	// larger reading is skipped, counted and acknowledged. Default 1 MiB.
	MaxPacket int `yaml:"max_packet"`
}

// MQTTTLS is the TLS of the agent's connection to an external broker: a
// private CA, a client certificate, the name the broker's certificate is
// for. Paths are files on the gateway (see MQTTTLS.Load).
type MQTTTLS struct {
	// CAFile is a PEM file of the CA certificates the broker's
	// certificate must chain to, instead of the system's roots.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are the PEM client certificate (chain) and its
	// private key, for brokers that require one; both or neither.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName is the name the broker's certificate must be valid for.
	// Default: the host of mqtt.url.
	ServerName string `yaml:"server_name"`
}

// Embedded is the agent's own MQTT broker.
type Embedded struct {
	// Listen is the TCP address to listen on. Default "127.0.0.1:1883".
	Listen string `yaml:"listen"`
	// Username and Password, when Username is set, are required of every
	// client of the embedded broker.
	Username string `yaml:"username"`
	Password string `yaml:"password"`
}

// Topic is one MQTT subscription.
type Topic struct {
	// Filter is an MQTT topic filter, e.g. "sensors/+/+".
	Filter string `yaml:"filter"`
	// Decoder names the payload decoder: "json", "senml" (RFC 8428 SenML
	// JSON packs) or "video" (per-frame object detections turned into
	// per-camera features). Default "json".
	Decoder string `yaml:"decoder"`
	// StreamPrefix (senml and video decoders) is a template for the start of
	// the stream ids: "{topic}" is the MQTT topic, and for the video decoder
	// "{camera}" is the payload's camera id. SenML streams are
	// <prefix>/<resolved name>, video streams <prefix>/<feature>. Default
	// "{topic}".
	StreamPrefix string `yaml:"stream_prefix"`
	// Video configures the video decoder (only with decoder "video").
	// Default: all defaults.
	Video *Video `yaml:"video"`
}

// Video configures the video decoder: per-camera features per time bucket.
type Video struct {
	// Bucket is the length of a feature bucket. Default 1s.
	Bucket time.Duration `yaml:"bucket"`
	// Classes each get a count_<class> feature; other classes are counted
	// as count_other. Default DefaultVideoClasses.
	Classes []string `yaml:"classes"`
	// FrameWidth and FrameHeight, in pixels, normalise box areas and
	// centres when a payload does not give its frame size. Default 0
	// (unknown: pixels).
	FrameWidth  int `yaml:"frame_width"`
	FrameHeight int `yaml:"frame_height"`
}

// NATS is the uplink.
type NATS struct {
	// URL of the NATS server. Default DefaultNATSURL.
	URL string `yaml:"url"`
	// TrustKey is the cloud's ed25519 public key for model signatures,
	// "ed25519:<base64>" as `fleet keys public` prints it. The agent loads
	// no model update that this key does not verify; without a key (here
	// or outpost-edge run --trust-key FILE) every model update is refused.
	TrustKey string `yaml:"trust_key"`
}

// Outbox bounds the on-disk outbox.
type Outbox struct {
	// MaxBytes bounds the bytes of records waiting for the uplink. When a
	// new record does not fit, the oldest summaries are dropped first, then
	// the oldest uncertain windows; queued anomalies are never dropped, so
	// when only anomalies are left the new record is refused. Every drop is
	// counted per kind and reported to the cloud. Default 64 MiB.
	MaxBytes int64 `yaml:"max_bytes"`
}

// Stream configures detection for the streams matched by Match.
type Stream struct {
	// Match is an MQTT topic filter over stream ids ("sensors/+/temp",
	// "sensors/#"). Default "#".
	Match string `yaml:"match"`
	// Window is the number of recent readings the scorer keeps. Default 120.
	// With WindowSpan it is the most readings the window may hold (default
	// DefaultSpanWindow).
	Window int `yaml:"window"`
	// WindowSpan, when set, makes the window the readings of the last
	// WindowSpan of reading time ("10m"), at most Window of them. Default:
	// unset (a window by sample count).
	WindowSpan time.Duration `yaml:"window_span"`
	// Reorder is the bounded reordering delay, in reading time ("5s"): a
	// reading is held until a reading Reorder newer has come, then judged in
	// timestamp order; readings older than that, and readings whose
	// timestamp was already taken, are dropped and counted (late_dropped,
	// duplicates). Default 0: no reordering (readings are judged as they
	// come, nothing is dropped).
	Reorder time.Duration `yaml:"reorder"`
	// Interval is the expected sample interval ("1m"), used to find gaps.
	// Default: learnt from the median of recent spacings.
	Interval time.Duration `yaml:"interval"`
	// GapFill says how a gap of more than GapFactor intervals is filled:
	// "hold" repeats the last value, "linear" interpolates to the new
	// reading, "missing" marks the samples missing (the scorer skips
	// them). Default: unset (gaps are left alone).
	GapFill string `yaml:"gap_fill"`
	// GapFactor is k: a spacing of more than k intervals is a gap. Default
	// 1.5.
	GapFactor float64 `yaml:"gap_factor"`
	// MaxFill is the most samples a gap is filled with; a longer gap resets
	// the window (counted as gaps_reset). Default 100.
	MaxFill int `yaml:"max_fill"`
	// Normalize says how the window is normalised into the feature vector
	// a model scorer reads: "none", "window" (z-normalised by the window's
	// own mean and deviation), "online" (running mean and deviation,
	// half-life HalfLife readings) or "manifest" (fixed NormMean and
	// NormScale, from the profile or the model's manifest). Default
	// "none".
	Normalize string `yaml:"normalize"`
	// HalfLife is the half-life, in readings, of the online statistics.
	// Default: Window.
	HalfLife int `yaml:"half_life"`
	// NormMean and NormScale are the fixed normalisation of "manifest":
	// (x - mean) / scale.
	NormMean  float64 `yaml:"norm_mean"`
	NormScale float64 `yaml:"norm_scale"`
	// Scorer says how readings are scored: "zscore" (distance from the
	// window's mean in standard deviations) or "model" (a TFLite model
	// with its manifest, named by Model, run on every reading). Default
	// "zscore".
	Scorer string `yaml:"scorer"`
	// Model names the model of scorer "model": a stock model's name
	// ("ae-edge", the int8 edge autoencoder) or the path of a model
	// manifest ("/etc/outpost/models/my-edge.json"), whose model file lies
	// beside it. Only used with scorer "model". Default DefaultModel.
	Model string `yaml:"model"`
	// Low and High are the score thresholds: below Low normal, from Low to
	// High uncertain, High and above anomaly. Defaults 4 and 6; with
	// scorer "model", the thresholds of the model's manifest (set both to
	// override them).
	Low  float64 `yaml:"low"`
	High float64 `yaml:"high"`
	// Cooldown is how long a stream must stay below Low before a new
	// incident can raise a new event: a number of readings ("20") or a
	// duration of reading time ("30s"). Default 20 readings.
	Cooldown Cooldown `yaml:"cooldown"`
	// Warmup is the number of readings a stream must have before it is
	// scored. Default: Window; with scorer "model", 0 (the model has a
	// warm-up of its own, in its manifest, which this adds to).
	Warmup int `yaml:"warmup"`
	// Score says what a model scorer's raw score is: "scaled" (the
	// |residual| or reconstruction error divided by its running scale,
	// comparable with the manifest's thresholds) or "residual" (the
	// |residual| itself, for the likelihood stage, which judges raw scores
	// against their own history). Only used with scorer "model". Default
	// "scaled".
	Score string `yaml:"score"`
	// Likelihood passes the raw scores through the anomaly likelihood
	// stage: the mean of the last Average raw scores, judged against a
	// Gaussian fitted to the last Window such means; the score becomes
	// 0..1 (1: a tail probability of 1e-10 or less), so low and high are
	// then probabilities like 0.99 and 1. Default: off (window 0).
	Likelihood Likelihood `yaml:"likelihood"`
	// ScoreHigh is the model's own score (with the likelihood stage, its
	// likelihood score) that counts as high, as a channel's high does: the
	// score is scaled by high / score_high before the channels and the
	// range rule raise it. Above 1 with the likelihood stage (which
	// saturates at 1), the model's score alone raises no anomaly. Default 0:
	// high itself.
	ScoreHigh float64 `yaml:"score_high"`
	// Novelty adds the novelty channel (it needs the likelihood stage):
	// readings are binned over the stream's range so far and a sequence of
	// Length bins the stream has never shown scores high. Default: off.
	Novelty Novelty `yaml:"novelty"`
	// Volatility adds the volatility channel (it needs the likelihood
	// stage): the mean of the last Average steps |x_t - x_(t-1)|, judged
	// by a likelihood stage of its own; a stream that starts to oscillate
	// or grows noisier within its usual range scores high. Default: off.
	Volatility Volatility `yaml:"volatility"`
	// Seasonal adds the seasonal channel (it needs the likelihood stage):
	// the mean of the last Average differences |x_t - x_(t-n)| from the
	// reading one period (default a day, n readings at the stream's
	// median spacing) earlier, judged by a likelihood stage of its own; a
	// daily pattern that skips a cycle or changes its shape scores high.
	// Default: off.
	Seasonal Seasonal `yaml:"seasonal"`
	// RangeMargin, when > 0, makes a reading beyond the range of all the
	// stream's readings so far, by more than RangeMargin times that range,
	// an anomaly. Default 0: off.
	RangeMargin float64 `yaml:"range_margin"`
	// StuckRun, when > 0, makes a reading that repeats the one before it
	// for the longest run of equal readings the stream has had, at least
	// StuckRun repeats long, an anomaly (once per run): a sensor that
	// freezes, or a pipeline that repeats its last value. Default 0: off.
	StuckRun int `yaml:"stuck_run"`
	// RangeWarmup is the number of readings the range must have seen
	// before the range rule applies. Default 100.
	RangeWarmup int `yaml:"range_warmup"`
	// AnomalyWindow is the number of most recent readings an anomaly event
	// carries (uncertain windows always carry the whole window, for the
	// cloud's second stage). Default 0: the whole window.
	AnomalyWindow int `yaml:"anomaly_window"`
}

// Likelihood configures the anomaly likelihood stage of a stream.
type Likelihood struct {
	// Window is the number of averaged raw scores the Gaussian is fitted
	// to; 0 turns the stage off.
	Window int `yaml:"window"`
	// Average is the number of raw scores averaged. Default 10.
	Average int `yaml:"average"`
	// Floor is the smallest deviation of the fit, as a fraction of the
	// fitted mean. Default 0.03.
	Floor float64 `yaml:"floor"`
}

// Novelty configures the novelty channel of a stream.
type Novelty struct {
	// Bins is the number of value bins over the stream's range (2 to 255);
	// 0 turns the channel off.
	Bins int `yaml:"bins"`
	// Length is the number of consecutive bins that make a pattern (1 to
	// 8).
	Length int `yaml:"length"`
	// High is the score of a never-seen pattern's likelihood at which it
	// counts.
	High float64 `yaml:"high"`
	// Holdoff is the number of readings after an anomalous one during
	// which the channel does not count (the echoes of that anomaly).
	// Default 0: none.
	Holdoff int `yaml:"holdoff"`
}

// Volatility configures the volatility channel of a stream.
type Volatility struct {
	// Average is the number of recent steps averaged (2 or more); 0 turns
	// the channel off.
	Average int `yaml:"average"`
	// High is the channel's likelihood score at which it counts as the
	// stream's high. Default 0: the stream's high.
	High float64 `yaml:"high"`
}

// Seasonal configures the seasonal channel of a stream.
type Seasonal struct {
	// Average is the number of recent differences averaged; 0 turns the
	// channel off.
	Average int `yaml:"average"`
	// High is the channel's likelihood score at which it counts as the
	// stream's high. Default 0: the stream's high.
	High float64 `yaml:"high"`
	// Period is the season's length. Default 24h.
	Period time.Duration `yaml:"period"`
}

// Cooldown is a number of readings or a duration; in YAML an integer or a
// duration string.
type Cooldown struct {
	Readings int
	Duration time.Duration
}

// IsZero reports whether c is unset.
func (c Cooldown) IsZero() bool { return c.Readings == 0 && c.Duration == 0 }

// String formats c as it would be written in YAML.
func (c Cooldown) String() string {
	if c.Duration != 0 {
		return c.Duration.String()
	}
	return fmt.Sprint(c.Readings)
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (c *Cooldown) UnmarshalYAML(n *yaml.Node) error {
	var i int
	if n.Tag == "!!int" && n.Decode(&i) == nil {
		*c = Cooldown{Readings: i}
		return nil
	}
	var s string
	if err := n.Decode(&s); err != nil {
		return fmt.Errorf("line %d: cooldown must be a number of readings or a duration like \"30s\"", n.Line)
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("line %d: cooldown %q must be a number of readings or a duration like \"30s\"", n.Line, s)
	}
	*c = Cooldown{Duration: d}
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (c Cooldown) MarshalYAML() (any, error) {
	if c.Duration != 0 {
		return c.Duration.String(), nil
	}
	return c.Readings, nil
}

// Uplink configures what the agent uploads beside events and summaries:
// a reservoir sample of windows it judged normal, which the cloud's
// learning loop uses to detect drift and retrain the edge model.
type Uplink struct {
	// SampleBudget is the most bytes per hour of sampled normal windows
	// (JSON payload and subject) the agent uploads; 0 turns sampling off.
	// Unset (nil) means DefaultSampleBudget.
	SampleBudget *int64 `yaml:"sample_budget"`
	// SampleInterval is how often the sample is uploaded (and a new one
	// started). Default DefaultSampleInterval.
	SampleInterval time.Duration `yaml:"sample_interval"`
	// SampleWindows is how many windows per stream the reservoir keeps
	// between uploads. Default DefaultSampleWindows.
	SampleWindows int `yaml:"sample_windows"`
}

// Metrics configures the Prometheus endpoint.
type Metrics struct {
	// Listen is the address /metrics is served on; empty means off.
	Listen string `yaml:"listen"`
}

// Defaults returns a copy of p with every unset field given its default.
func (p Profile) Defaults() Profile {
	if p.Agent.Heartbeat == 0 {
		p.Agent.Heartbeat = DefaultHeartbeat
	}
	if p.MQTT.Embedded != nil {
		e := *p.MQTT.Embedded
		if e.Listen == "" {
			e.Listen = "127.0.0.1:1883"
		}
		p.MQTT.Embedded = &e
	}
	if p.MQTT.ClientID == "" && p.Agent.ID != "" {
		p.MQTT.ClientID = "outpost-edge-" + p.Agent.ID
	}
	if p.MQTT.QoS == nil {
		q := DefaultQoS
		p.MQTT.QoS = &q
	}
	if p.MQTT.KeepAlive == 0 {
		p.MQTT.KeepAlive = DefaultMQTTKeepAlive
	}
	if p.MQTT.MaxPacket == 0 {
		p.MQTT.MaxPacket = DefaultMQTTMaxPacket
	}
	if len(p.MQTT.Topics) == 0 {
		p.MQTT.Topics = []Topic{{Filter: "sensors/+/+"}}
	} else {
		p.MQTT.Topics = append([]Topic(nil), p.MQTT.Topics...)
	}
	for i := range p.MQTT.Topics {
		t := &p.MQTT.Topics[i]
		if t.Decoder == "" {
			t.Decoder = DefaultDecoder
		}
		if t.StreamPrefix == "" && (t.Decoder == "senml" || t.Decoder == "video") {
			t.StreamPrefix = DefaultStreamPrefix
		}
		if t.Decoder == "video" {
			var v Video
			if t.Video != nil {
				v = *t.Video
			}
			if v.Bucket == 0 {
				v.Bucket = DefaultVideoBucket
			}
			if v.Classes == nil {
				v.Classes = DefaultVideoClasses
			}
			v.Classes = append([]string{}, v.Classes...) // [] stays "no classes"
			t.Video = &v
		}
	}
	if p.NATS.URL == "" {
		p.NATS.URL = DefaultNATSURL
	}
	if p.DataDir == "" {
		p.DataDir = DefaultDataDir
	}
	if p.Outbox.MaxBytes == 0 {
		p.Outbox.MaxBytes = DefaultOutboxMaxBytes
	}
	if len(p.Streams) == 0 {
		p.Streams = []Stream{{}}
	} else {
		p.Streams = append([]Stream(nil), p.Streams...)
	}
	for i := range p.Streams {
		p.Streams[i] = p.Streams[i].Defaults()
	}
	if p.SummaryInterval == 0 {
		p.SummaryInterval = DefaultSummaryInterval
	}
	if p.CheckpointInterval == 0 {
		p.CheckpointInterval = DefaultCheckpointInterval
	}
	if p.Uplink.SampleBudget == nil {
		b := int64(DefaultSampleBudget)
		p.Uplink.SampleBudget = &b
	}
	if p.Uplink.SampleInterval == 0 {
		p.Uplink.SampleInterval = DefaultSampleInterval
	}
	if p.Uplink.SampleWindows == 0 {
		p.Uplink.SampleWindows = DefaultSampleWindows
	}
	return p
}

// Defaults returns a copy of s with every unset field given its default.
func (s Stream) Defaults() Stream {
	if s.Match == "" {
		s.Match = "#"
	}
	if s.Window == 0 {
		s.Window = DefaultWindow
		if s.WindowSpan > 0 {
			s.Window = DefaultSpanWindow
		}
	}
	if s.Scorer == "" {
		s.Scorer = DefaultScorer
	}
	model := s.Scorer == ScorerModel
	if model && s.Model == "" {
		s.Model = DefaultModel
	}
	if s.Low == 0 && s.High == 0 && !model { // a model's: its manifest's
		s.Low, s.High = DefaultLow, DefaultHigh
	}
	if s.Cooldown.IsZero() {
		s.Cooldown = Cooldown{Readings: DefaultCooldown}
	}
	if s.Warmup == 0 && !model {
		s.Warmup = s.Window
		if s.WindowSpan > 0 {
			s.Warmup = min(s.Window, DefaultSpanWarmup)
		}
	}
	if s.GapFill != "" {
		if s.GapFactor == 0 {
			s.GapFactor = DefaultGapFactor
		}
		if s.MaxFill == 0 {
			s.MaxFill = DefaultMaxFill
		}
	}
	if s.Normalize == "" {
		s.Normalize = "none"
	}
	if s.Normalize == "online" && s.HalfLife == 0 {
		s.HalfLife = s.Window
	}
	return s
}

// Load reads and parses the profile at path. It does not validate it. Like
// Parse, with a Problems error it returns what it could decode.
func Load(path string) (Profile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Profile{}, fmt.Errorf("profile: %w", err)
	}
	p, err := Parse(b)
	if ps := AsProblems(err); ps != nil {
		return p, ps
	}
	if err != nil {
		return Profile{}, fmt.Errorf("profile %s: %w", path, err)
	}
	return p, nil
}

// Parse parses a profile from YAML. Unknown keys and values of the wrong type
// are errors (a Problems listing every one, with path and line); with such
// an error Parse still returns what it could decode, so that a caller can
// Validate it and report every problem at once. Parse does not fill defaults
// or validate values.
func Parse(b []byte) (Profile, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		return Profile{}, fmt.Errorf("parse: %w", err)
	}
	var p Profile
	p.lines = map[string]int{}
	if len(root.Content) == 0 {
		return p, nil // empty document: all defaults
	}
	doc := root.Content[0]
	var probs Problems
	walk(doc, "", profileType, p.lines, &probs)
	if err := doc.Decode(&p); err != nil {
		probs = append(probs, decodeProblems(err)...)
	}
	if len(probs) > 0 {
		p.pathsByLine(probs)
		return p, probs
	}
	return p, nil
}

// Line returns the line the YAML path was read from, or 0 if unknown.
func (p Profile) Line(path string) int { return p.lines[path] }

// Check parses and validates a profile and returns every problem found by
// both, or nil.
func Check(b []byte) error {
	p, err := Parse(b)
	ps := AsProblems(err)
	if err != nil && ps == nil {
		return err
	}
	ps = append(ps, AsProblems(p.Validate())...)
	if len(ps) == 0 {
		return nil
	}
	return ps
}
