package decode

import (
	"strconv"
	"time"
)

// maxFastValues is the most entries of "values" the fast path decodes; a
// payload with more goes through encoding/json.
const maxFastValues = 16

// fastValue is one entry of "values": its name as a slice of the payload.
type fastValue struct {
	name []byte
	v    float64
}

// decodeJSONFast decodes, without reflection, the payloads the JSON decoder
// sees almost always: one object holding "ts" (an RFC 3339 string or unix
// milliseconds) and either "value" (a number) or "values" (an object of at
// most maxFastValues numbers), each key once and spelled exactly so, in any
// order, with JSON whitespace anywhere. It allocates only the readings (and,
// for "values", their stream ids).
//
// ok is false for anything else: another key (encoding/json matches keys
// case-insensitively and ignores unknown ones), an escape or a non-ASCII
// byte in a string, null, a duplicate key, trailing data, and every payload
// that is an error. The caller then decodes with encoding/json
// (decodeJSONStd), the reference. When ok is true the readings equal
// decodeJSONStd's, value for value (FuzzJSONFast checks it).
func decodeJSONFast(topic string, p []byte) (rs []Reading, ok bool) {
	var (
		ts                          time.Time
		value                       float64
		vals                        [maxFastValues]fastValue
		nvals                       int
		haveTS, haveValue, haveVals bool
	)
	i := skipWS(p, 0)
	if i >= len(p) || p[i] != '{' {
		return nil, false
	}
	i = skipWS(p, i+1)
	for {
		key, j, ok := fastString(p, i)
		if !ok {
			return nil, false
		}
		j = skipWS(p, j)
		if j >= len(p) || p[j] != ':' {
			return nil, false
		}
		j = skipWS(p, j+1)
		switch string(key) {
		case "ts":
			if haveTS {
				return nil, false
			}
			haveTS = true
			ts, j, ok = fastTS(p, j)
		case "value":
			if haveValue {
				return nil, false
			}
			haveValue = true
			value, j, ok = fastNumber(p, j)
		case "values":
			if haveVals {
				return nil, false
			}
			haveVals = true
			nvals, j, ok = fastValues(p, j, &vals)
		default:
			return nil, false
		}
		if !ok {
			return nil, false
		}
		j = skipWS(p, j)
		if j >= len(p) {
			return nil, false
		}
		if p[j] == ',' {
			i = skipWS(p, j+1)
			continue
		}
		if p[j] != '}' {
			return nil, false
		}
		i = j + 1
		break
	}
	if skipWS(p, i) != len(p) || !haveTS || haveValue == haveVals {
		return nil, false
	}
	if haveValue {
		return []Reading{{Stream: topic, TS: ts, Value: value}}, true
	}
	if nvals == 0 {
		return nil, false
	}
	vs := vals[:nvals]
	for k := 1; k < len(vs); k++ { // insertion sort: a handful of names
		for m := k; m > 0 && string(vs[m].name) <= string(vs[m-1].name); m-- {
			if string(vs[m].name) == string(vs[m-1].name) {
				return nil, false // encoding/json keeps the last; rare enough
			}
			vs[m], vs[m-1] = vs[m-1], vs[m]
		}
	}
	rs = make([]Reading, len(vs))
	for k, v := range vs {
		rs[k] = Reading{Stream: topic + "/" + string(v.name), TS: ts, Value: v.v}
	}
	return rs, true
}

func skipWS(p []byte, i int) int {
	for i < len(p) && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r') {
		i++
	}
	return i
}

// fastString returns the contents of the JSON string at p[i] and the index
// after it, when the string is printable ASCII without escapes.
func fastString(p []byte, i int) (s []byte, next int, ok bool) {
	if i >= len(p) || p[i] != '"' {
		return nil, i, false
	}
	for j := i + 1; j < len(p); j++ {
		switch c := p[j]; {
		case c == '"':
			return p[i+1 : j], j + 1, true
		case c < 0x20 || c >= 0x7f || c == '\\':
			return nil, i, false
		}
	}
	return nil, i, false
}

// pow10 are the powers of ten float64 holds exactly that fastNumber uses.
var pow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// fastNumber parses the JSON number at p[i] as encoding/json does
// (strconv.ParseFloat of the literal), and returns the index after it. ok
// is false for anything that is not a number, and for numbers out of range.
func fastNumber(p []byte, i int) (f float64, next int, ok bool) {
	start := i
	if i < len(p) && p[i] == '-' {
		i++
	}
	switch {
	case i >= len(p):
		return 0, start, false
	case p[i] == '0':
		i++
	case '1' <= p[i] && p[i] <= '9':
		for i < len(p) && isDigit(p[i]) {
			i++
		}
	default:
		return 0, start, false
	}
	simple := true // no exponent: digits and a fraction
	frac := 0      // digits after the point
	if i < len(p) && p[i] == '.' {
		i++
		d := i
		for i < len(p) && isDigit(p[i]) {
			i++
		}
		if i == d {
			return 0, start, false
		}
		frac = i - d
	}
	if i < len(p) && (p[i] == 'e' || p[i] == 'E') {
		simple = false
		i++
		if i < len(p) && (p[i] == '+' || p[i] == '-') {
			i++
		}
		d := i
		for i < len(p) && isDigit(p[i]) {
			i++
		}
		if i == d {
			return 0, start, false
		}
	}
	lit := p[start:i]
	if simple && len(lit) <= 16 { // at most 15 digits, a sign and a point
		neg := lit[0] == '-'
		if neg {
			lit = lit[1:]
		}
		var n int64
		digits := 0
		for _, c := range lit {
			if c != '.' {
				n = n*10 + int64(c-'0')
				digits++
			}
		}
		if digits <= 15 {
			// n < 2^53 and 10^frac (frac <= 15) are exact, so one
			// division is the correctly rounded value, as ParseFloat's.
			f = float64(n) / pow10[frac]
			if neg {
				f = -f
			}
			return f, i, true
		}
	}
	f, err := strconv.ParseFloat(string(lit), 64)
	if err != nil {
		return 0, start, false
	}
	return f, i, true
}

// fastTS parses the "ts" value at p[i] as parseTS does, for a string in the
// RFC 3339 forms time.Parse's fast path takes (with 'Z' or a ±hh:mm offset)
// and for unix milliseconds.
func fastTS(p []byte, i int) (t time.Time, next int, ok bool) {
	if i < len(p) && p[i] == '"' {
		s, next, ok := fastString(p, i)
		if !ok {
			return time.Time{}, i, false
		}
		t, ok := fastRFC3339(s)
		return t, next, ok
	}
	ms, next, ok := fastNumber(p, i)
	if !ok || ms < 0 || ms > 253402300799999 {
		return time.Time{}, i, false
	}
	return time.UnixMilli(int64(ms)).UTC(), next, true
}

// fastRFC3339 parses YYYY-MM-DDTHH:MM:SS[.fraction](Z|±hh:mm) with the
// rules of time.Parse(time.RFC3339Nano, ...) and returns the time in UTC.
// ok is false for any other form, and for years before 1970 (parseTS's
// check, on the time as written).
func fastRFC3339(s []byte) (time.Time, bool) {
	if len(s) < len("2006-01-02T15:04:05Z") {
		return time.Time{}, false
	}
	ok := true
	num := func(b []byte, min, max int) int {
		x := 0
		for _, c := range b {
			if !isDigit(c) {
				ok = false
				return min
			}
			x = x*10 + int(c-'0')
		}
		if x < min || x > max {
			ok = false
			return min
		}
		return x
	}
	year := num(s[0:4], 1970, 9999)
	month := num(s[5:7], 1, 12)
	day := num(s[8:10], 1, daysIn(month, year))
	hour := num(s[11:13], 0, 23)
	minute := num(s[14:16], 0, 59)
	sec := num(s[17:19], 0, 59)
	if !ok || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' {
		return time.Time{}, false
	}
	s = s[19:]
	nsec := 0
	if len(s) >= 2 && s[0] == '.' && isDigit(s[1]) {
		n := 1
		for n < len(s) && isDigit(s[n]) {
			if n <= 9 {
				nsec = nsec*10 + int(s[n]-'0')
			}
			n++
		}
		for k := n; k <= 9; k++ { // fewer than 9 digits: scale
			nsec *= 10
		}
		s = s[n:]
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC)
	switch {
	case len(s) == 1 && s[0] == 'Z':
		return t, true
	case len(s) == 6 && (s[0] == '+' || s[0] == '-') && s[3] == ':':
		hh := num(s[1:3], 0, 23)
		mm := num(s[4:6], 0, 59)
		if !ok {
			return time.Time{}, false
		}
		off := (hh*60 + mm) * 60
		if s[0] == '-' {
			off = -off
		}
		return t.Add(-time.Duration(off) * time.Second), true
	}
	return time.Time{}, false
}

// daysIn is the number of days of month in year (month 1..12).
func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// fastValues parses the "values" object at p[i] into vals.
func fastValues(p []byte, i int, vals *[maxFastValues]fastValue) (n, next int, ok bool) {
	if i >= len(p) || p[i] != '{' {
		return 0, i, false
	}
	i = skipWS(p, i+1)
	if i < len(p) && p[i] == '}' {
		return 0, i + 1, true
	}
	for {
		name, j, ok := fastString(p, i)
		if !ok || !fastName(name) || n == maxFastValues {
			return 0, i, false
		}
		j = skipWS(p, j)
		if j >= len(p) || p[j] != ':' {
			return 0, i, false
		}
		v, j, ok := fastNumber(p, skipWS(p, j+1))
		if !ok {
			return 0, i, false
		}
		vals[n] = fastValue{name, v}
		n++
		j = skipWS(p, j)
		if j >= len(p) {
			return 0, i, false
		}
		switch p[j] {
		case ',':
			i = skipWS(p, j+1)
		case '}':
			return n, j + 1, true
		default:
			return 0, i, false
		}
	}
}

// fastName reports whether a value name is valid (else decodeJSONStd
// reports bad_name).
func fastName(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c == '/' || c == '+' || c == '#' {
			return false
		}
	}
	return true
}
