package decode

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"
)

// JSON decodes Outpost's JSON readings:
//
//	{"ts": "2026-01-02T03:04:05Z", "value": 21.5}
//	{"ts": 1767323045000, "values": {"temp": 21.5, "hum": 40}}
//
// ts is an RFC 3339 string or unix milliseconds. With "value" the stream id
// is the topic; with "values" each entry is the stream topic + "/" + name.
type JSON struct{}

type jsonReading struct {
	TS     json.RawMessage            `json:"ts"`
	Value  *json.RawMessage           `json:"value"`
	Values map[string]json.RawMessage `json:"values"`
}

// Decode implements Decoder. The common payloads are decoded by a
// hand-written parser (jsonfast.go); anything it does not handle, including
// every malformed payload, goes through encoding/json, whose results are
// the reference (FuzzJSONFast checks that both agree).
func (JSON) Decode(topic string, payload []byte) ([]Reading, error) {
	if rs, ok := decodeJSONFast(topic, payload); ok {
		return rs, nil
	}
	return decodeJSONStd(topic, payload)
}

// decodeJSONStd decodes payload with encoding/json.
func decodeJSONStd(topic string, payload []byte) ([]Reading, error) {
	var r jsonReading
	dec := json.NewDecoder(bytes.NewReader(payload))
	if err := dec.Decode(&r); err != nil {
		return nil, &Error{Reason: "syntax", Detail: err.Error()}
	}
	if dec.More() {
		return nil, &Error{Reason: "syntax", Detail: "trailing data after the JSON object"}
	}
	ts, err := parseTS(r.TS)
	if err != nil {
		return nil, err
	}
	switch {
	case r.Value != nil && r.Values != nil:
		return nil, &Error{Reason: "ambiguous", Detail: `both "value" and "values" are set`}
	case r.Value != nil:
		v, err := number(*r.Value)
		if err != nil {
			return nil, err
		}
		return []Reading{{Stream: topic, TS: ts, Value: v}}, nil
	case len(r.Values) > 0:
		names := make([]string, 0, len(r.Values))
		for n := range r.Values {
			if n == "" || strings.ContainsAny(n, "/+#") {
				return nil, &Error{Reason: "bad_name", Detail: fmt.Sprintf("value name %q", n)}
			}
			names = append(names, n)
		}
		sort.Strings(names)
		out := make([]Reading, 0, len(names))
		for _, n := range names {
			v, err := number(r.Values[n])
			if err != nil {
				return nil, err
			}
			out = append(out, Reading{Stream: topic + "/" + n, TS: ts, Value: v})
		}
		return out, nil
	}
	return nil, &Error{Reason: "no_value", Detail: `neither "value" nor "values" is set`}
}

func parseTS(raw json.RawMessage) (time.Time, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return time.Time{}, &Error{Reason: "no_ts", Detail: `"ts" is missing`}
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return time.Time{}, &Error{Reason: "bad_ts", Detail: err.Error()}
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return time.Time{}, &Error{Reason: "bad_ts", Detail: err.Error()}
		}
		if t.Year() < 1970 {
			return time.Time{}, &Error{Reason: "bad_ts", Detail: fmt.Sprintf("ts %s is before 1970", s)}
		}
		return t.UTC(), nil
	}
	var ms float64
	if err := json.Unmarshal(raw, &ms); err != nil {
		return time.Time{}, &Error{Reason: "bad_ts", Detail: fmt.Sprintf("ts %s is neither an RFC 3339 string nor unix milliseconds", raw)}
	}
	// Years 1970..9999 only: keeps time arithmetic from overflowing.
	if ms < 0 || ms > 253402300799999 || math.IsNaN(ms) {
		return time.Time{}, &Error{Reason: "bad_ts", Detail: fmt.Sprintf("ts %s out of range", raw)}
	}
	return time.UnixMilli(int64(ms)).UTC(), nil
}

func number(raw json.RawMessage) (float64, error) {
	var v float64
	if err := json.Unmarshal(raw, &v); err != nil {
		return 0, &Error{Reason: "bad_value", Detail: fmt.Sprintf("value %s is not a number", raw)}
	}
	return v, nil
}
