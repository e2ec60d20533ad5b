package wire

import (
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"
	"unsafe"
)

// DecodeEvent sets *ev to the Event encoded in data, with the result
// json.Unmarshal into a zero Event gives, but without its reflection and
// with few allocations: the cloud decodes every event it ingests.
//
// A hand-written scanner handles the form agents write (the Event fields,
// each at most once, with their exact names; strings without escapes;
// numbers and RFC 3339 times as encoding/json writes them). Anything else
// (escapes, unknown or differently cased keys, null, repeated keys, numbers
// a field's type cannot hold, syntax errors...) is handed to encoding/json,
// so the accepted input and its result are the same as json.Unmarshal's; an
// error is json.Unmarshal's error.
func DecodeEvent(data []byte, ev *Event) error {
	*ev = Event{}
	if decodeEventFast(data, ev) {
		return nil
	}
	*ev = Event{}
	return json.Unmarshal(data, ev)
}

// Event fields, as bits of a "seen" set.
const (
	fAgent = 1 << iota
	fSeq
	fStream
	fTS
	fKind
	fScore
	fLow
	fHigh
	fValue
	fModel
	fWindow
	fMissing
	fCreated
	fIncarnation
	fFeatures
	fFeaturesMissing
)

// eventScanner scans one JSON object of an Event; ok is false as soon as
// it meets anything it leaves to encoding/json.
type eventScanner struct {
	b []byte
	i int
}

func (s *eventScanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// consume skips whitespace and then c.
func (s *eventScanner) consume(c byte) bool {
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// rawString returns the bytes between the quotes of a string without
// escapes or control characters, in valid UTF-8.
func (s *eventScanner) rawString() ([]byte, bool) {
	s.ws()
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		return nil, false
	}
	start := s.i + 1
	ascii := true
	for j := start; j < len(s.b); j++ {
		c := s.b[j]
		switch {
		case c == '"':
			v := s.b[start:j]
			if !ascii && !utf8.Valid(v) {
				return nil, false
			}
			s.i = j + 1
			return v, true
		case c == '\\' || c < 0x20:
			return nil, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return nil, false
}

// quoted returns a string literal with its quotes (for time.Time's
// UnmarshalJSON, which encoding/json hands the literal as it is).
func (s *eventScanner) quoted() ([]byte, bool) {
	s.ws()
	start := s.i
	if _, ok := s.rawString(); !ok {
		return nil, false
	}
	return s.b[start:s.i], true
}

// number returns a JSON number literal; isInt is true when it has neither
// fraction nor exponent.
func (s *eventScanner) number() (lit []byte, isInt, ok bool) {
	s.ws()
	b, i := s.b, s.i
	start := i
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	default:
		return nil, false, false
	}
	isInt = true
	if i < len(b) && b[i] == '.' {
		isInt = false
		i++
		d := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == d {
			return nil, false, false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		isInt = false
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		d := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == d {
			return nil, false, false
		}
	}
	s.i = i
	return b[start:i], isInt, true
}

// str views b as a string for parsing only (the result must not be kept).
func str(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

func (s *eventScanner) float() (float64, bool) {
	lit, _, ok := s.number()
	if !ok {
		return 0, false
	}
	if f, ok := exactFloat(lit); ok {
		return f, true
	}
	f, err := strconv.ParseFloat(str(lit), 64)
	return f, err == nil
}

// pow10 holds the powers of ten that float64 represents exactly.
var pow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
	1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

// exactFloat converts a valid JSON number literal whose digits make an
// integer mantissa below 2^53 and whose decimal exponent is within ±22:
// then mantissa and power of ten are exact float64 values and one
// multiplication or division rounds correctly (Clinger's fast path, the
// one strconv takes too). Other literals report false.
func exactFloat(lit []byte) (float64, bool) {
	i, neg := 0, false
	if lit[0] == '-' {
		neg, i = true, 1
	}
	var mant uint64
	digits, exp := 0, 0
	for ; i < len(lit) && lit[i] >= '0' && lit[i] <= '9'; i++ {
		mant = mant*10 + uint64(lit[i]-'0')
		digits++
	}
	if i < len(lit) && lit[i] == '.' {
		for i++; i < len(lit) && lit[i] >= '0' && lit[i] <= '9'; i++ {
			mant = mant*10 + uint64(lit[i]-'0')
			digits++
			exp--
		}
	}
	if digits > 15 { // 15 digits stay below 2^53 (and never overflow)
		return 0, false
	}
	if i < len(lit) { // exponent
		i++
		eneg := false
		if lit[i] == '+' || lit[i] == '-' {
			eneg = lit[i] == '-'
			i++
		}
		e := 0
		for ; i < len(lit); i++ {
			e = e*10 + int(lit[i]-'0')
			if e > 1000 {
				return 0, false
			}
		}
		if eneg {
			e = -e
		}
		exp += e
	}
	f := float64(mant)
	switch {
	case mant == 0:
	case exp >= 0 && exp <= 22:
		f *= pow10[exp]
	case exp < 0 && exp >= -22:
		f /= pow10[-exp]
	default:
		return 0, false
	}
	if neg {
		f = -f
	}
	return f, true
}

func (s *eventScanner) uint() (uint64, bool) {
	lit, isInt, ok := s.number()
	if !ok || !isInt || lit[0] == '-' {
		return 0, false
	}
	if len(lit) < 20 { // fits without overflow checks
		var v uint64
		for _, c := range lit {
			v = v*10 + uint64(c-'0')
		}
		return v, true
	}
	v, err := strconv.ParseUint(str(lit), 10, 64)
	return v, err == nil
}

func (s *eventScanner) int() (int, bool) {
	lit, isInt, ok := s.number()
	if !ok || !isInt {
		return 0, false
	}
	v, err := strconv.ParseInt(str(lit), 10, strconv.IntSize)
	return int(v), err == nil
}

func (s *eventScanner) time(t *time.Time) bool {
	lit, ok := s.quoted()
	return ok && t.UnmarshalJSON(lit) == nil
}

func (s *eventScanner) string() (string, bool) {
	v, ok := s.rawString()
	if !ok {
		return "", false
	}
	return string(v), true
}

func (s *eventScanner) floats() ([]float64, bool) {
	if !s.consume('[') {
		return nil, false
	}
	out := make([]float64, 0, 32)
	if s.consume(']') {
		return out, true
	}
	for {
		f, ok := s.float()
		if !ok {
			return nil, false
		}
		out = append(out, f)
		if s.consume(']') {
			return out, true
		}
		if !s.consume(',') {
			return nil, false
		}
	}
}

func (s *eventScanner) ints() ([]int, bool) {
	if !s.consume('[') {
		return nil, false
	}
	out := []int{}
	if s.consume(']') {
		return out, true
	}
	for {
		v, ok := s.int()
		if !ok {
			return nil, false
		}
		out = append(out, v)
		if s.consume(']') {
			return out, true
		}
		if !s.consume(',') {
			return nil, false
		}
	}
}

func decodeEventFast(data []byte, ev *Event) bool {
	s := eventScanner{b: data}
	if !s.consume('{') {
		return false
	}
	var seen uint32
	if !s.consume('}') {
		for {
			key, ok := s.rawString()
			if !ok || !s.consume(':') {
				return false
			}
			var bit uint32
			switch str(key) {
			case "agent":
				bit = fAgent
				ev.Agent, ok = s.string()
			case "seq":
				bit = fSeq
				ev.Seq, ok = s.uint()
			case "stream":
				bit = fStream
				ev.Stream, ok = s.string()
			case "ts":
				bit = fTS
				ok = s.time(&ev.TS)
			case "kind":
				bit = fKind
				var v []byte
				v, ok = s.rawString()
				switch str(v) {
				case string(KindAnomaly):
					ev.Kind = KindAnomaly
				case string(KindUncertain):
					ev.Kind = KindUncertain
				default:
					ev.Kind = Kind(v)
				}
			case "score":
				bit = fScore
				ev.Score, ok = s.float()
			case "low":
				bit = fLow
				ev.Low, ok = s.float()
			case "high":
				bit = fHigh
				ev.High, ok = s.float()
			case "value":
				bit = fValue
				ev.Value, ok = s.float()
			case "model":
				bit = fModel
				ev.Model, ok = s.string()
			case "window":
				bit = fWindow
				ev.Window, ok = s.floats()
			case "missing":
				bit = fMissing
				ev.Missing, ok = s.ints()
			case "created":
				bit = fCreated
				ok = s.time(&ev.Created)
			case "incarnation":
				bit = fIncarnation
				ev.Incarnation, ok = s.string()
			case "features":
				bit = fFeatures
				ev.Features, ok = s.floats()
			case "features_missing":
				bit = fFeaturesMissing
				ev.FeaturesMissing, ok = s.ints()
			default:
				return false
			}
			if !ok || seen&bit != 0 {
				return false
			}
			seen |= bit
			if s.consume('}') {
				break
			}
			if !s.consume(',') {
				return false
			}
		}
	}
	s.ws()
	return s.i == len(s.b)
}
