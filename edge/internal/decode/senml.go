package decode

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// SenML decodes SenML JSON packs (RFC 8428), e.g.
//
//	[{"bn":"urn:dev:ow:10e2073a0108006:","bt":1.276020076001e+09,"bu":"A",
//	  "n":"voltage","u":"V","v":120.1},
//	 {"n":"current","t":-5,"v":1.2}]
//
// A pack is a JSON array of records. Base fields (bn, bt, bu, bv, bs, bver)
// apply to their own record and every later one until changed. A record
// resolves to: name = bn + n, time = bt + t (a resolved time of 2^28 or more
// is seconds since the Unix epoch; a smaller one, including 0 or a missing
// time, is relative to the time the pack was received), unit = u or bu,
// value = bv + v, sum = bs + s.
//
// Each record needs exactly one of v, vs, vb, vd, or only a sum. The
// resolved name must start with a letter or digit and contain only
// letters, digits, '-', ':', '.', '/' and '_' (so it never holds an MQTT
// wildcard). bver must be a positive integer no greater than 10. Unknown
// fields are ignored, except those ending in '_' ("must understand"),
// which reject the pack.
//
// Every record with a numeric value (v) becomes a reading of stream
// <prefix>/<name> (prefix "{topic}" by default). Records with only a
// string, boolean or data value, or only a sum, are well formed but not
// numeric readings: they are skipped and counted (Skipped). A bad record
// fails the whole pack with an *Error such as
// `senml: record 3: field "v": not a number`.
type SenML struct {
	prefix  prefixTemplate
	skipped atomic.Uint64
}

// NewSenML returns a SenML decoder whose stream ids are
// <streamPrefix>/<resolved name>; streamPrefix may use "{topic}" and
// defaults to DefaultStreamPrefix.
func NewSenML(streamPrefix string) (*SenML, error) {
	p, err := newPrefixTemplate(streamPrefix, "topic")
	if err != nil {
		return nil, err
	}
	return &SenML{prefix: p}, nil
}

// Decode implements Decoder; relative times are relative to time.Now().
func (d *SenML) Decode(topic string, payload []byte) ([]Reading, error) {
	return d.DecodeAt(topic, payload, time.Now())
}

// DecodeAt implements TimedDecoder.
func (d *SenML) DecodeAt(topic string, payload []byte, received time.Time) ([]Reading, error) {
	recs, err := ResolveSenML(payload, received)
	if err != nil {
		return nil, err
	}
	prefix := d.prefix.expand(topic, "")
	out := make([]Reading, 0, len(recs))
	for _, r := range recs {
		if r.Value == nil {
			d.skipped.Add(1)
			continue
		}
		out = append(out, Reading{Stream: prefix + "/" + r.Name, TS: r.Time, Value: *r.Value})
	}
	return out, nil
}

// Skipped implements Skipper: records without a numeric value.
func (d *SenML) Skipped() uint64 { return d.skipped.Load() }

// SenMLRecord is one resolved SenML record (RFC 8428 section 4.6). Exactly
// one of Value, String, Bool and Data is set, unless only Sum is.
type SenMLRecord struct {
	Name   string
	Unit   string
	Time   time.Time
	Value  *float64
	String *string
	Bool   *bool
	// Data is the base64url data value as sent.
	Data *string
	Sum  *float64
	// UpdateTime is the ut field in seconds, or 0.
	UpdateTime float64
}

// senmlVersion is the highest SenML version understood.
const senmlVersion = 10

// senmlAbsolute: resolved times at or above 2^28 are absolute.
const senmlAbsolute = 1 << 28

func senmlErr(reason string, rec int, format string, args ...any) *Error {
	d := fmt.Sprintf(format, args...)
	if rec >= 0 {
		d = fmt.Sprintf("record %d: %s", rec, d)
	}
	return &Error{Decoder: "senml", Reason: reason, Detail: d}
}

// ResolveSenML parses a SenML JSON pack and returns its resolved records;
// relative times are relative to now. Errors are *Error.
func ResolveSenML(payload []byte, now time.Time) ([]SenMLRecord, error) {
	var pack []map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(payload))
	if err := dec.Decode(&pack); err != nil {
		var te *json.UnmarshalTypeError
		if asTypeErr(err, &te) {
			return nil, senmlErr("syntax", -1, "a pack must be a JSON array of objects, got %s", te.Value)
		}
		return nil, senmlErr("syntax", -1, "%v", err)
	}
	if dec.More() {
		return nil, senmlErr("syntax", -1, "trailing data after the pack")
	}
	if len(pack) == 0 {
		return nil, senmlErr("empty", -1, "the pack has no records")
	}
	var (
		bn, bu     string
		bt, bv, bs float64
		out        = make([]SenMLRecord, 0, len(pack))
	)
	for i, rec := range pack {
		if rec == nil {
			return nil, senmlErr("syntax", i, "not an object")
		}
		if raw, ok := rec["bver"]; ok {
			v, err := senmlNumber(raw)
			if err != nil || v != math.Trunc(v) || v < 1 {
				return nil, senmlErr("bad_version", i, "field \"bver\": must be a positive integer, got %s", raw)
			}
			if v > senmlVersion {
				return nil, senmlErr("bad_version", i, "field \"bver\": version %g is newer than %d", v, senmlVersion)
			}
		}
		if err := mustUnderstand(rec, i); err != nil {
			return nil, err
		}
		var err error
		if raw, ok := rec["bn"]; ok {
			if bn, err = senmlString(raw, i, "bn"); err != nil {
				return nil, err
			}
		}
		if raw, ok := rec["bt"]; ok {
			if bt, err = senmlFloat(raw, i, "bt", "bad_ts"); err != nil {
				return nil, err
			}
		}
		if raw, ok := rec["bu"]; ok {
			if bu, err = senmlString(raw, i, "bu"); err != nil {
				return nil, err
			}
		}
		if raw, ok := rec["bv"]; ok {
			if bv, err = senmlFloat(raw, i, "bv", "bad_value"); err != nil {
				return nil, err
			}
		}
		if raw, ok := rec["bs"]; ok {
			if bs, err = senmlFloat(raw, i, "bs", "bad_value"); err != nil {
				return nil, err
			}
		}

		r := SenMLRecord{Name: bn, Unit: bu}
		if raw, ok := rec["n"]; ok {
			n, err := senmlString(raw, i, "n")
			if err != nil {
				return nil, err
			}
			r.Name = bn + n
		}
		if err := checkSenMLName(r.Name); err != nil {
			return nil, senmlErr("bad_name", i, "name %q: %v", r.Name, err)
		}
		if raw, ok := rec["u"]; ok {
			if r.Unit, err = senmlString(raw, i, "u"); err != nil {
				return nil, err
			}
		}

		values := 0
		if raw, ok := rec["v"]; ok {
			v, err := senmlFloat(raw, i, "v", "bad_value")
			if err != nil {
				return nil, err
			}
			v += bv
			if math.IsInf(v, 0) {
				return nil, senmlErr("bad_value", i, "field \"v\": base value + value overflows")
			}
			r.Value = &v
			values++
		}
		if raw, ok := rec["vs"]; ok {
			s, err := senmlString(raw, i, "vs")
			if err != nil {
				return nil, err
			}
			r.String = &s
			values++
		}
		if raw, ok := rec["vb"]; ok {
			var b bool
			if err := json.Unmarshal(raw, &b); err != nil || string(raw) == "null" {
				return nil, senmlErr("bad_field", i, "field \"vb\": not a boolean")
			}
			r.Bool = &b
			values++
		}
		if raw, ok := rec["vd"]; ok {
			s, err := senmlString(raw, i, "vd")
			if err != nil {
				return nil, err
			}
			r.Data = &s
			values++
		}
		if raw, ok := rec["s"]; ok {
			s, err := senmlFloat(raw, i, "s", "bad_value")
			if err != nil {
				return nil, err
			}
			s += bs
			if math.IsInf(s, 0) {
				return nil, senmlErr("bad_value", i, "field \"s\": base sum + sum overflows")
			}
			r.Sum = &s
		}
		switch {
		case values > 1:
			return nil, senmlErr("ambiguous", i, "more than one of \"v\", \"vs\", \"vb\", \"vd\"")
		case values == 0 && r.Sum == nil:
			return nil, senmlErr("no_value", i, "none of \"v\", \"vs\", \"vb\", \"vd\", \"s\"")
		}

		t := bt
		if raw, ok := rec["t"]; ok {
			tv, err := senmlFloat(raw, i, "t", "bad_ts")
			if err != nil {
				return nil, err
			}
			t += tv
		}
		if r.Time, err = senmlTime(t, now); err != nil {
			return nil, senmlErr("bad_ts", i, "time %g: %v", t, err)
		}
		if raw, ok := rec["ut"]; ok {
			if r.UpdateTime, err = senmlFloat(raw, i, "ut", "bad_ts"); err != nil {
				return nil, err
			}
		}
		out = append(out, r)
	}
	return out, nil
}

func asTypeErr(err error, te **json.UnmarshalTypeError) bool {
	e, ok := err.(*json.UnmarshalTypeError)
	if ok {
		*te = e
	}
	return ok
}

// mustUnderstand rejects fields ending in '_' (RFC 8428 section 4.4): this
// decoder understands none.
func mustUnderstand(rec map[string]json.RawMessage, i int) error {
	var bad []string
	for k := range rec {
		if strings.HasSuffix(k, "_") {
			bad = append(bad, k)
		}
	}
	if len(bad) == 0 {
		return nil
	}
	sort.Strings(bad)
	return senmlErr("must_understand", i, "field %q must be understood and is not", bad[0])
}

func senmlString(raw json.RawMessage, i int, field string) (string, error) {
	var s string
	if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
		return "", senmlErr("bad_field", i, "field %q: not a string", field)
	}
	return s, nil
}

// senmlNumber parses a JSON number (not a string, bool or null).
func senmlNumber(raw json.RawMessage) (float64, error) {
	if len(raw) == 0 || (raw[0] != '-' && (raw[0] < '0' || raw[0] > '9')) {
		return 0, fmt.Errorf("not a number")
	}
	// raw is a valid JSON value starting like a number: a JSON number,
	// whose grammar ParseFloat accepts.
	v, err := strconv.ParseFloat(string(raw), 64)
	if err != nil || math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, fmt.Errorf("number out of range")
	}
	return v, nil
}

func senmlFloat(raw json.RawMessage, i int, field, reason string) (float64, error) {
	v, err := senmlNumber(raw)
	if err != nil {
		return 0, senmlErr(reason, i, "field %q: %v", field, err)
	}
	return v, nil
}

// senmlTime converts a resolved SenML time to a time.Time (years 1970 to
// 9999 only). Float seconds carry about a microsecond of precision at
// today's times: times are rounded to microseconds, so 1.276020076001e+09
// is .001 exactly.
func senmlTime(t float64, now time.Time) (time.Time, error) {
	var r time.Time
	switch {
	case math.IsInf(t, 0) || math.IsNaN(t):
		return time.Time{}, fmt.Errorf("not finite")
	case t < senmlAbsolute:
		// Relative to now. Bounded so the duration cannot overflow.
		if t < -9e9 {
			return time.Time{}, fmt.Errorf("out of range")
		}
		r = now.Add(time.Duration(math.Round(t*1e6)) * time.Microsecond).UTC()
	case t > 253402300799:
		return time.Time{}, fmt.Errorf("out of range (years 1970 to 9999)")
	default:
		sec := math.Floor(t)
		r = time.Unix(int64(sec), int64(math.Round((t-sec)*1e6))*1000).UTC()
	}
	if r.Year() < 1970 || r.Year() > 9999 {
		return time.Time{}, fmt.Errorf("out of range (years 1970 to 9999)")
	}
	return r, nil
}

// checkSenMLName checks RFC 8428's name rule.
func checkSenMLName(n string) error {
	if n == "" {
		return fmt.Errorf("empty")
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if i == 0 && !alnum {
			return fmt.Errorf("must start with a letter or digit")
		}
		if !alnum && c != '-' && c != ':' && c != '.' && c != '/' && c != '_' {
			return fmt.Errorf("character %q not allowed", c)
		}
	}
	return nil
}
