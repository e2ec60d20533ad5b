// Package decode turns MQTT payloads into readings. Decoders are registered
// by name in a Registry so that new payload formats (SenML, video metadata)
// are added without touching ingest.
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
// an *Error.
type Decoder interface {
	Decode(topic string, payload []byte) ([]Reading, error)
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
}

func (e *Error) Error() string { return "decode: " + e.Reason + ": " + e.Detail }

// Reason returns the reason label of err, or "other".
func Reason(err error) string {
	var de *Error
	if errors.As(err, &de) {
		return de.Reason
	}
	return "other"
}

// Registry maps decoder names to constructors.
type Registry struct {
	m map[string]func() Decoder
}

// NewRegistry returns a registry holding the stock decoders ("json").
func NewRegistry() *Registry {
	r := &Registry{m: map[string]func() Decoder{}}
	r.Register("json", func() Decoder { return JSON{} })
	return r
}

// Register adds or replaces the decoder constructor called name.
func (r *Registry) Register(name string, newDecoder func() Decoder) { r.m[name] = newDecoder }

// New returns a new decoder called name.
func (r *Registry) New(name string) (Decoder, error) {
	f, ok := r.m[name]
	if !ok {
		return nil, fmt.Errorf("decode: unknown decoder %q (known: %v)", name, r.Names())
	}
	return f(), nil
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
