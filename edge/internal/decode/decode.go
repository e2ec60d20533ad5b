// Package decode turns MQTT payloads into readings. Decoders are registered
// by name in a Registry ("json", "senml", "video") and chosen per topic in the
// profile, so that new payload formats are added without touching ingest.
//
// A decoder may be stateful (the video decoder aggregates frames into time
// buckets): a decoder instance is called by one goroutine at a time, its
// output depends only on the sequence of inputs it was given (topic,
// payload and receive time), and a payload that fails to decode leaves its
// state unchanged. Replaying the same inputs therefore gives the same
// readings.
package decode

import (
	"errors"
	"fmt"
	"sort"
	"time"
)

// Reading is one value of one stream at one time.
type Reading struct {
	// Stream is the stream id, e.g. "sensors/press-1/temp".
	Stream string
	// TS is the reading's own time.
	TS time.Time
	// Value is the reading's value.
	Value float64
}

// Decoder decodes one payload received on topic into readings. It must not
// keep payload after returning. A payload that can never be decoded returns
// an *Error. A decoded payload may yield no readings (a video frame that
// does not close a time bucket, a SenML pack of string values).
type Decoder interface {
	Decode(topic string, payload []byte) ([]Reading, error)
}

// TimedDecoder is a Decoder whose result depends on when the payload was
// received: SenML's relative times are relative to "now", which is the
// receive time. Callers use DecodeAt, which prefers DecodeAt over Decode.
type TimedDecoder interface {
	Decoder
	// DecodeAt decodes payload received on topic at received.
	DecodeAt(topic string, payload []byte, received time.Time) ([]Reading, error)
}

// DecodeAt decodes payload with d, passing the receive time when d is a
// TimedDecoder.
func DecodeAt(d Decoder, topic string, payload []byte, received time.Time) ([]Reading, error) {
	if td, ok := d.(TimedDecoder); ok {
		return td.DecodeAt(topic, payload, received)
	}
	return d.Decode(topic, payload)
}

// Skipper is implemented by decoders that skip well-formed input that
// yields no reading (SenML records with only string, boolean or data
// values; video frames that arrive after their time bucket was emitted).
type Skipper interface {
	// Skipped returns how many records or frames were skipped so far. Safe
	// to call from any goroutine.
	Skipped() uint64
}

// DecoderFunc adapts a function to Decoder.
type DecoderFunc func(topic string, payload []byte) ([]Reading, error)

// Decode calls f.
func (f DecoderFunc) Decode(topic string, payload []byte) ([]Reading, error) {
	return f(topic, payload)
}

// Error is a malformed payload. Reason is a short, stable label suitable for
// a metric label ("syntax", "no_ts", "bad_ts", "no_value", "bad_value", ...).
type Error struct {
	Reason string
	Detail string
	// Decoder, when set, names the decoder and prefixes the message instead
	// of "decode: <reason>", e.g. `senml: record 3: field "v": not a number`.
	Decoder string
}

func (e *Error) Error() string {
	if e.Decoder != "" {
		return e.Decoder + ": " + e.Detail
	}
	return "decode: " + e.Reason + ": " + e.Detail
}

// Reason returns the reason label of err, or "other".
func Reason(err error) string {
	var de *Error
	if errors.As(err, &de) {
		return de.Reason
	}
	return "other"
}

// Options configure a decoder built by a Registry. The zero value gives each
// decoder its defaults. Decoders ignore the options that are not theirs.
type Options struct {
	// StreamPrefix is a template for the part of the stream id before the
	// decoder's own suffix (SenML: "/<resolved name>"; video:
	// "/<feature>"). "{topic}" is replaced by the MQTT topic and, for the
	// video decoder, "{camera}" by the payload's camera id (sanitised).
	// Default "{topic}".
	StreamPrefix string
	// Video configures the video decoder.
	Video VideoOptions
}

// Registry maps decoder names to constructors.
type Registry struct {
	m map[string]func(Options) (Decoder, error)
}

// Stock decoder names.
const (
	NameJSON  = "json"
	NameSenML = "senml"
	NameVideo = "video"
)

// NewRegistry returns a registry holding the stock decoders: "json"
// (JSON), "senml" (SenML) and "video" (Video).
func NewRegistry() *Registry {
	r := &Registry{m: map[string]func(Options) (Decoder, error){}}
	r.Register(NameJSON, func() Decoder { return JSON{} })
	r.RegisterWithOptions(NameSenML, func(o Options) (Decoder, error) { return NewSenML(o.StreamPrefix) })
	r.RegisterWithOptions(NameVideo, func(o Options) (Decoder, error) { return NewVideo(o.StreamPrefix, o.Video) })
	return r
}

// Register adds or replaces the decoder constructor called name, for a
// decoder that takes no options.
func (r *Registry) Register(name string, newDecoder func() Decoder) {
	r.m[name] = func(Options) (Decoder, error) { return newDecoder(), nil }
}

// RegisterWithOptions adds or replaces the decoder constructor called name,
// for a decoder configured by Options.
func (r *Registry) RegisterWithOptions(name string, newDecoder func(Options) (Decoder, error)) {
	r.m[name] = newDecoder
}

// New returns a new decoder called name with default options.
func (r *Registry) New(name string) (Decoder, error) { return r.NewWith(name, Options{}) }

// NewWith returns a new decoder called name configured by opts.
func (r *Registry) NewWith(name string, opts Options) (Decoder, error) {
	f, ok := r.m[name]
	if !ok {
		return nil, fmt.Errorf("decode: unknown decoder %q (known: %v)", name, r.Names())
	}
	d, err := f(opts)
	if err != nil {
		return nil, fmt.Errorf("decode: decoder %q: %w", name, err)
	}
	return d, nil
}

// Names lists the registered decoder names, sorted.
func (r *Registry) Names() []string {
	var n []string
	for k := range r.m {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}
