package profile

import (
	"fmt"
	"math"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/outpost-iot/outpost/shared/modelpkg"
	"github.com/outpost-iot/outpost/shared/names"
)

// Decoders are the payload decoder names the schema accepts. The edge agent
// registers a decoder under each.
var Decoders = []string{"json", "senml", "video"}

// Scorers are the scorer names the schema accepts.
var Scorers = []string{"zscore", ScorerModel}

// ScorerModel is the scorer that runs a model (Stream.Model).
const ScorerModel = "model"

// Score kinds of a model scorer (Stream.Score).
const (
	// ScoreScaled divides the model's error by its running scale.
	ScoreScaled = "scaled"
	// ScoreResidual is the model's error itself, for the likelihood stage.
	ScoreResidual = "residual"
)

// Validate checks p (with its defaults filled in) and returns every problem
// as Problems, or nil. An empty agent.id is allowed here, because a profile
// usually describes a class of gateways; see ValidateForRun.
func (p Profile) Validate() error {
	v := validator{p: p}
	v.check(p.Defaults())
	if len(v.probs) == 0 {
		return nil
	}
	return v.probs
}

// ValidateForRun is Validate plus what a running agent needs: an agent id,
// and the files mqtt.tls names readable and valid.
func (p Profile) ValidateForRun() error {
	v := validator{p: p}
	v.check(p.Defaults())
	if p.Agent.ID == "" {
		v.add("agent.id", "required (set it in the profile or with --agent-id)")
	}
	v.checkMQTTFiles(p.MQTT) // the files are on the gateway
	if len(v.probs) == 0 {
		return nil
	}
	return v.probs
}

type validator struct {
	p     Profile // as parsed, for lines
	probs Problems
}

func (v *validator) add(path, format string, args ...any) {
	line := v.p.lines[path]
	// A path that was defaulted has no line; use its nearest parent's.
	for q := path; line == 0 && q != ""; {
		i := strings.LastIndexAny(q, ".[")
		if i < 0 {
			break
		}
		q = q[:i]
		line = v.p.lines[q]
	}
	v.probs = append(v.probs, Problem{Path: path, Line: line, Msg: fmt.Sprintf(format, args...)})
}

func (v *validator) check(p Profile) {
	if p.Agent.ID != "" {
		if err := names.ValidAgentID(p.Agent.ID); err != nil {
			v.add("agent.id", "%s", strings.TrimPrefix(err.Error(), "agent id "))
		}
	}
	if p.Agent.Group != "" {
		if err := names.ValidAgentID(p.Agent.Group); err != nil {
			v.add("agent.group", "%s", strings.TrimPrefix(err.Error(), "agent id "))
		}
	}
	if p.Agent.Heartbeat <= 0 {
		v.add("agent.heartbeat", "must be > 0")
	}

	switch {
	case p.MQTT.URL == "" && p.MQTT.Embedded == nil:
		v.add("mqtt", "set exactly one of url or embedded (neither is set)")
	case p.MQTT.URL != "" && p.MQTT.Embedded != nil:
		v.add("mqtt", "set exactly one of url or embedded (both are set)")
	}
	if p.MQTT.URL != "" {
		v.checkURL("mqtt.url", p.MQTT.URL, "tcp", "mqtt", "ssl", "tls", "mqtts", "ws", "wss")
	}
	if e := p.MQTT.Embedded; e != nil {
		v.checkAddr("mqtt.embedded.listen", e.Listen)
		if e.Username == "" && e.Password != "" {
			v.add("mqtt.embedded.username", "required when a password is set")
		}
	}
	if q := *p.MQTT.QoS; q != 0 && q != 1 {
		v.add("mqtt.qos", "must be 0 or 1, got %d", q)
	}
	v.checkMQTTConn(p.MQTT) // mqtttls.go
	for i, t := range p.MQTT.Topics {
		path := fmt.Sprintf("mqtt.topics[%d]", i)
		if err := checkFilter(t.Filter); err != nil {
			v.add(path+".filter", "%v", err)
		}
		if !contains(Decoders, t.Decoder) {
			v.add(path+".decoder", "unknown decoder %q (known: %s)", t.Decoder, strings.Join(Decoders, ", "))
		}
		v.checkDecoderOptions(path, t)
	}

	v.checkURL("nats.url", p.NATS.URL, "nats", "tls", "ws", "wss")
	if p.NATS.TrustKey != "" {
		if _, err := modelpkg.ParsePublicKey(p.NATS.TrustKey); err != nil {
			v.add("nats.trust_key", "%v", err)
		}
	}
	if strings.TrimSpace(p.DataDir) == "" {
		v.add("data_dir", "must not be empty")
	}
	if p.Outbox.MaxBytes < 64<<10 {
		v.add("outbox.max_bytes", "must be at least 65536, got %d", p.Outbox.MaxBytes)
	}

	for i, s := range p.Streams {
		path := fmt.Sprintf("streams[%d]", i)
		if err := checkFilter(s.Match); err != nil {
			v.add(path+".match", "%v", err)
		}
		if s.Window <= 0 {
			v.add(path+".window", "must be > 0, got %d", s.Window)
		} else if s.Window < 2 || s.Window > 100000 {
			v.add(path+".window", "must be between 2 and 100000, got %d", s.Window)
		}
		if !contains(Scorers, s.Scorer) {
			v.add(path+".scorer", "unknown scorer %q (known: %s)", s.Scorer, strings.Join(Scorers, ", "))
		}
		model := s.Scorer == ScorerModel
		if s.Model != "" && !model {
			v.add(path+".model", "only used with scorer: model (scorer is %q)", s.Scorer)
		} else if model {
			if err := checkModelSpec(s.Model); err != nil {
				v.add(path+".model", "%v", err)
			}
		}
		if s.Low < 0 {
			v.add(path+".low", "must be >= 0, got %g", s.Low)
		}
		switch {
		case model && s.Low == 0 && s.High == 0:
			// the model's manifest thresholds
		case model && (s.Low == 0) != (s.High == 0):
			v.add(path+".high", "with scorer: model set both low and high (to override the manifest's thresholds) or neither, got low %g and high %g", s.Low, s.High)
		case s.High <= s.Low:
			v.add(path+".high", "must be greater than low (%g), got %g", s.Low, s.High)
		}
		if s.Cooldown.Readings < 0 || s.Cooldown.Duration < 0 {
			v.add(path+".cooldown", "must not be negative, got %s", s.Cooldown)
		}
		v.checkStreamWindow(path, s)
		v.checkStreamStages(path, s)
		if s.Window <= 0 {
			// warmup defaults to the window; already reported
		} else if s.Warmup < 0 {
			v.add(path+".warmup", "must be >= 0, got %d", s.Warmup)
		} else if s.Warmup < 2 && !(model && s.Warmup == 0) {
			v.add(path+".warmup", "must be at least 2 readings, got %d", s.Warmup)
		}
	}
	if p.SummaryInterval <= 0 {
		v.add("summary_interval", "must be > 0")
	}
	if c := p.CheckpointInterval; c < 100*time.Millisecond || c > time.Hour {
		v.add("checkpoint_interval", "must be between 100ms and 1h, got %v", c)
	}
	if p.Metrics.Listen != "" {
		v.checkAddr("metrics.listen", p.Metrics.Listen)
	}
	if b := p.Uplink.SampleBudget; b != nil && (*b < 0 || *b > 1<<30) {
		v.add("uplink.sample_budget", "must be between 0 (off) and 1073741824 bytes per hour, got %d", *b)
	}
	if p.Uplink.SampleInterval < 0 || p.Uplink.SampleInterval > 24*time.Hour {
		v.add("uplink.sample_interval", "must be > 0 and at most 24h, got %s", p.Uplink.SampleInterval)
	}
	if p.Uplink.SampleWindows < 0 || p.Uplink.SampleWindows > 1000 {
		v.add("uplink.sample_windows", "must be between 1 and 1000, got %d", p.Uplink.SampleWindows)
	}
}

// checkStreamStages checks a stream's score kind, likelihood, novelty and
// range options.
func (v *validator) checkStreamStages(path string, s Stream) {
	switch s.Score {
	case "", ScoreScaled, ScoreResidual:
		if s.Score != "" && s.Scorer != ScorerModel {
			v.add(path+".score", "only used with scorer: model (scorer is %q)", s.Scorer)
		}
	default:
		v.add(path+".score", "must be %q or %q, got %q", ScoreScaled, ScoreResidual, s.Score)
	}
	l := s.Likelihood
	if l.Window < 0 || l.Window > 1000000 {
		v.add(path+".likelihood.window", "must be between 0 (off) and 1000000, got %d", l.Window)
	}
	if l.Average < 0 || (l.Window > 0 && l.Average > l.Window) {
		v.add(path+".likelihood.average", "must be between 1 and the window (%d), got %d", l.Window, l.Average)
	}
	if l.Floor < 0 || math.IsNaN(l.Floor) {
		v.add(path+".likelihood.floor", "must be >= 0, got %g", l.Floor)
	}
	n := s.Novelty
	if n.Bins != 0 {
		switch {
		case n.Bins < 2 || n.Bins > 255:
			v.add(path+".novelty.bins", "must be between 2 and 255 (or 0: off), got %d", n.Bins)
		case n.Length < 1 || n.Length > 8:
			v.add(path+".novelty.length", "must be between 1 and 8, got %d", n.Length)
		case math.Pow(float64(n.Bins), float64(n.Length)) > 1<<16:
			v.add(path+".novelty", "bins^length must be at most 65536 patterns, got %d^%d", n.Bins, n.Length)
		}
		if n.High < 0 || math.IsNaN(n.High) {
			v.add(path+".novelty.high", "must be >= 0, got %g", n.High)
		}
		if n.Holdoff < 0 {
			v.add(path+".novelty.holdoff", "must be >= 0, got %d", n.Holdoff)
		}
		if l.Window == 0 {
			v.add(path+".novelty", "needs the likelihood stage (likelihood.window > 0)")
		}
	}
	if vo := s.Volatility; vo.Average != 0 {
		if vo.Average < 2 {
			v.add(path+".volatility.average", "must be 2 or more (or 0: off), got %d", vo.Average)
		}
		if vo.High < 0 || math.IsNaN(vo.High) {
			v.add(path+".volatility.high", "must be >= 0, got %g", vo.High)
		}
		if l.Window == 0 {
			v.add(path+".volatility", "needs the likelihood stage (likelihood.window > 0)")
		}
	}
	if se := s.Seasonal; se.Average != 0 {
		if se.Average < 1 {
			v.add(path+".seasonal.average", "must be 1 or more (or 0: off), got %d", se.Average)
		}
		if se.High < 0 || math.IsNaN(se.High) {
			v.add(path+".seasonal.high", "must be >= 0, got %g", se.High)
		}
		if se.Period < 0 {
			v.add(path+".seasonal.period", "must be >= 0, got %s", se.Period)
		}
		if l.Window == 0 {
			v.add(path+".seasonal", "needs the likelihood stage (likelihood.window > 0)")
		}
	}
	if s.ScoreHigh < 0 || math.IsNaN(s.ScoreHigh) || math.IsInf(s.ScoreHigh, 0) {
		v.add(path+".score_high", "must be >= 0 and finite (0: high), got %g", s.ScoreHigh)
	}
	if s.RangeMargin < 0 || math.IsNaN(s.RangeMargin) {
		v.add(path+".range_margin", "must be >= 0, got %g", s.RangeMargin)
	}
	if s.StuckRun < 0 {
		v.add(path+".stuck_run", "must be >= 0 (0: off), got %d", s.StuckRun)
	}
	if s.AnomalyWindow < 0 {
		v.add(path+".anomaly_window", "must be >= 0 (0: the whole window), got %d", s.AnomalyWindow)
	}
	if s.RangeWarmup < 0 {
		v.add(path+".range_warmup", "must be >= 0, got %d", s.RangeWarmup)
	}
}

// checkStreamWindow checks a stream's window span, reordering, gap and
// normalisation options.
func (v *validator) checkStreamWindow(path string, s Stream) {
	if s.WindowSpan < 0 || s.WindowSpan > 7*24*time.Hour {
		v.add(path+".window_span", "must be > 0 and at most 168h, got %s", s.WindowSpan)
	}
	if s.Reorder < 0 || s.Reorder > time.Hour {
		v.add(path+".reorder", "must be between 0 and 1h, got %s", s.Reorder)
	} else if s.WindowSpan > 0 && s.Reorder >= s.WindowSpan {
		v.add(path+".reorder", "must be shorter than window_span (%s), got %s", s.WindowSpan, s.Reorder)
	}
	if s.Interval < 0 {
		v.add(path+".interval", "must be > 0, got %s", s.Interval)
	}
	if s.GapFill != "" && !contains(GapFills, s.GapFill) {
		v.add(path+".gap_fill", "unknown gap fill %q (known: %s)", s.GapFill, strings.Join(GapFills, ", "))
	}
	if s.GapFill == "" {
		for _, f := range []struct {
			name string
			set  bool
		}{{"interval", s.Interval != 0}, {"gap_factor", s.GapFactor != 0}, {"max_fill", s.MaxFill != 0}} {
			if f.set {
				v.add(path+"."+f.name, "only used with gap_fill (which is not set)")
			}
		}
	} else {
		if s.GapFactor < 1 || s.GapFactor > 1000 {
			v.add(path+".gap_factor", "must be between 1 and 1000, got %g", s.GapFactor)
		}
		if s.MaxFill < 1 || s.MaxFill > 100000 {
			v.add(path+".max_fill", "must be between 1 and 100000, got %d", s.MaxFill)
		}
	}
	if !contains(Normalizations, s.Normalize) {
		v.add(path+".normalize", "unknown normalisation %q (known: %s)", s.Normalize, strings.Join(Normalizations, ", "))
	}
	if s.HalfLife < 0 || s.HalfLife > 1000000 {
		v.add(path+".half_life", "must be between 1 and 1000000 readings, got %d", s.HalfLife)
	} else if s.HalfLife != 0 && s.Normalize != "online" {
		v.add(path+".half_life", "only used with normalize: online (normalize is %q)", s.Normalize)
	}
	if s.Normalize != "manifest" {
		if s.NormMean != 0 || s.NormScale != 0 {
			v.add(path+".norm_scale", "norm_mean and norm_scale are only used with normalize: manifest (normalize is %q)", s.Normalize)
		}
	} else if s.NormScale < 0 || (s.NormScale == 0 && s.Scorer == DefaultScorer) {
		// A model scorer may take them from its manifest; zscore has none.
		v.add(path+".norm_scale", "must be > 0 with normalize: manifest and scorer %s, got %g", s.Scorer, s.NormScale)
	}
}

// checkDecoderOptions checks a topic's stream_prefix and video options.
func (v *validator) checkDecoderOptions(path string, t Topic) {
	switch t.Decoder {
	case "senml":
		if err := checkStreamPrefix(t.StreamPrefix, "topic"); err != nil {
			v.add(path+".stream_prefix", "%v", err)
		}
	case "video":
		if err := checkStreamPrefix(t.StreamPrefix, "topic", "camera"); err != nil {
			v.add(path+".stream_prefix", "%v", err)
		}
	default:
		if t.StreamPrefix != "" {
			v.add(path+".stream_prefix", "only the senml and video decoders take a stream prefix")
		}
	}
	if t.Video == nil {
		return
	}
	vp := path + ".video"
	if t.Decoder != "video" {
		v.add(vp, "only the video decoder takes video options (decoder is %q)", t.Decoder)
		return
	}
	vo := t.Video
	if vo.Bucket <= 0 || vo.Bucket > time.Hour {
		v.add(vp+".bucket", "must be > 0 and at most 1h, got %s", vo.Bucket)
	}
	seen := map[string]bool{}
	for i, c := range vo.Classes {
		cp := fmt.Sprintf("%s.classes[%d]", vp, i)
		switch {
		case !validClass(c):
			v.add(cp, "class %q: 1 to 64 lower case letters, digits, '_' or '-'", c)
		case c == "other":
			v.add(cp, "class \"other\" is implicit (every class not listed)")
		case seen[c]:
			v.add(cp, "class %q listed twice", c)
		}
		seen[c] = true
	}
	if vo.FrameWidth < 0 || vo.FrameWidth > 1e6 {
		v.add(vp+".frame_width", "must be between 0 and 1000000, got %d", vo.FrameWidth)
	}
	if vo.FrameHeight < 0 || vo.FrameHeight > 1e6 {
		v.add(vp+".frame_height", "must be between 0 and 1000000, got %d", vo.FrameHeight)
	}
	if (vo.FrameWidth == 0) != (vo.FrameHeight == 0) {
		v.add(vp, "set both frame_width and frame_height, or neither")
	}
}

func validClass(c string) bool {
	if c == "" || len(c) > 64 {
		return false
	}
	for i := 0; i < len(c); i++ {
		b := c[i]
		if !(b >= 'a' && b <= 'z' || b >= '0' && b <= '9' || b == '_' || b == '-') {
			return false
		}
	}
	return true
}

// checkStreamPrefix checks a stream prefix template: placeholders "{name}"
// from vars only; otherwise no MQTT wildcard or NUL, no empty level, no
// leading or trailing '/'.
func checkStreamPrefix(tmpl string, vars ...string) error {
	if tmpl == "" {
		return fmt.Errorf("must not be empty")
	}
	var lit strings.Builder
	for rest := tmpl; rest != ""; {
		i := strings.IndexAny(rest, "{}")
		if i < 0 {
			lit.WriteString(rest)
			break
		}
		if rest[i] == '}' {
			return fmt.Errorf("stream prefix %q: unmatched '}'", tmpl)
		}
		lit.WriteString(rest[:i])
		j := strings.IndexByte(rest[i:], '}')
		if j < 0 {
			return fmt.Errorf("stream prefix %q: unmatched '{'", tmpl)
		}
		if name := rest[i+1 : i+j]; !contains(vars, name) {
			return fmt.Errorf("stream prefix %q: unknown placeholder {%s} (known: {%s})", tmpl, name, strings.Join(vars, "}, {"))
		}
		lit.WriteString("x")
		rest = rest[i+j+1:]
	}
	l := lit.String()
	switch {
	case strings.ContainsAny(l, "+#\x00"):
		return fmt.Errorf("stream prefix %q must not contain '+', '#' or NUL", tmpl)
	case strings.HasPrefix(l, "/") || strings.HasSuffix(l, "/") || strings.Contains(l, "//"):
		return fmt.Errorf("stream prefix %q must not start or end with '/' or have an empty level", tmpl)
	}
	return nil
}

func (v *validator) checkURL(path, s string, schemes ...string) {
	u, err := url.Parse(s)
	if err != nil {
		v.add(path, "invalid URL %q: %v", s, err)
		return
	}
	if !contains(schemes, u.Scheme) {
		v.add(path, "URL %q: scheme must be one of %s", s, strings.Join(schemes, ", "))
		return
	}
	if u.Host == "" {
		v.add(path, "URL %q has no host", s)
	}
}

func (v *validator) checkAddr(path, addr string) {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		v.add(path, "address %q must be host:port: %v", addr, err)
	}
}

// checkFilter reports whether f is a valid MQTT topic filter.
func checkFilter(f string) error {
	if f == "" {
		return fmt.Errorf("must not be empty")
	}
	levels := strings.Split(f, "/")
	for i, l := range levels {
		switch {
		case l == "#" && i != len(levels)-1:
			return fmt.Errorf("topic filter %q: '#' must be the last level", f)
		case l != "#" && strings.Contains(l, "#"):
			return fmt.Errorf("topic filter %q: '#' must be a whole level", f)
		case l != "+" && strings.Contains(l, "+"):
			return fmt.Errorf("topic filter %q: '+' must be a whole level", f)
		}
	}
	return nil
}

// MatchFilter reports whether the MQTT topic filter f matches topic.
func MatchFilter(f, topic string) bool {
	fl := strings.Split(f, "/")
	tl := strings.Split(topic, "/")
	for i, l := range fl {
		if l == "#" {
			return true
		}
		if i >= len(tl) {
			return false
		}
		if l != "+" && l != tl[i] {
			return false
		}
	}
	return len(fl) == len(tl)
}

// StreamFor returns the first entry of p.Streams (defaults filled) whose
// match filter matches the stream id, or the default stream.
func (p Profile) StreamFor(stream string) Stream {
	for _, s := range p.Streams {
		if MatchFilter(s.Match, stream) {
			return s.Defaults()
		}
	}
	return Stream{}.Defaults()
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// checkModelSpec checks the form of a stream's model: a stock model's name
// (lower-case letters, digits, '-', '_' and '.') or a manifest's path
// ending in ".json". Whether the model exists is the agent's to say.
func checkModelSpec(spec string) error {
	if strings.HasSuffix(spec, ".json") {
		if strings.TrimSpace(strings.TrimSuffix(spec, ".json")) == "" {
			return fmt.Errorf("model %q: a manifest path needs a file name", spec)
		}
		return nil
	}
	for i, c := range spec {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return fmt.Errorf("model %q: character %q at %d is not allowed in a model name (a manifest path ends in .json)", spec, c, i+1)
		}
	}
	if spec == "" {
		return fmt.Errorf("must not be empty")
	}
	return nil
}
