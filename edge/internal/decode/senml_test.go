package decode

import (
	"math"
	"strings"
	"testing"
	"time"
)

func f64(v float64) *float64 { return &v }
func str(s string) *string   { return &s }
func boolp(b bool) *bool     { return &b }

// senmlNow is the receive time used for relative SenML times.
var senmlNow = time.Date(2026, 11, 23, 6, 0, 0, 0, time.UTC)

func abs(sec float64) time.Time {
	s := math.Floor(sec)
	return time.Unix(int64(s), int64(math.Round((sec-s)*1e6))*1000).UTC()
}

// TestSenMLRFCExamples resolves the examples of RFC 8428 section 5.1 and
// compares them with the resolved records the RFC gives (or that its rules
// give, for examples the RFC shows only unresolved).
func TestSenMLRFCExamples(t *testing.T) {
	cases := []struct {
		name string
		pack string
		want []SenMLRecord
	}{
		{"5.1.1 single datapoint",
			`[{"n":"urn:dev:ow:10e2073a01080063","u":"Cel","v":23.1}]`,
			[]SenMLRecord{{Name: "urn:dev:ow:10e2073a01080063", Unit: "Cel", Time: senmlNow, Value: f64(23.1)}}},
		{"5.1.2 multiple datapoints",
			`[{"bn":"urn:dev:ow:10e2073a01080063:","n":"voltage","u":"V","v":120.1},
			  {"n":"current","u":"A","v":1.2}]`,
			[]SenMLRecord{
				{Name: "urn:dev:ow:10e2073a01080063:voltage", Unit: "V", Time: senmlNow, Value: f64(120.1)},
				{Name: "urn:dev:ow:10e2073a01080063:current", Unit: "A", Time: senmlNow, Value: f64(1.2)}}},
		{"5.1.3 multiple measurements",
			`[{"bn":"urn:dev:ow:10e2073a0108006:","bt":1.276020076001e+09,
			   "bu":"A","bver":5,"n":"voltage","u":"V","v":120.1},
			  {"n":"current","t":-5,"v":1.2},
			  {"n":"current","t":-4,"v":1.3},
			  {"n":"current","t":-3,"v":1.4},
			  {"n":"current","t":-2,"v":1.5},
			  {"n":"current","t":-1,"v":1.6},
			  {"n":"current","v":1.7}]`,
			// The RFC shows this pack resolved, as here.
			[]SenMLRecord{
				{Name: "urn:dev:ow:10e2073a0108006:voltage", Unit: "V", Time: abs(1.276020076001e+09), Value: f64(120.1)},
				{Name: "urn:dev:ow:10e2073a0108006:current", Unit: "A", Time: abs(1.276020071001e+09), Value: f64(1.2)},
				{Name: "urn:dev:ow:10e2073a0108006:current", Unit: "A", Time: abs(1.276020072001e+09), Value: f64(1.3)},
				{Name: "urn:dev:ow:10e2073a0108006:current", Unit: "A", Time: abs(1.276020073001e+09), Value: f64(1.4)},
				{Name: "urn:dev:ow:10e2073a0108006:current", Unit: "A", Time: abs(1.276020074001e+09), Value: f64(1.5)},
				{Name: "urn:dev:ow:10e2073a0108006:current", Unit: "A", Time: abs(1.276020075001e+09), Value: f64(1.6)},
				{Name: "urn:dev:ow:10e2073a0108006:current", Unit: "A", Time: abs(1.276020076001e+09), Value: f64(1.7)}}},
		{"5.1.5 multiple data types",
			`[{"bn":"urn:dev:ow:10e2073a01080063:","n":"temp","u":"Cel","v":23.1},
			  {"n":"label","vs":"Machine Room"},
			  {"n":"open","vb":false},
			  {"n":"nfc-reader","vd":"aGkgCg"}]`,
			[]SenMLRecord{
				{Name: "urn:dev:ow:10e2073a01080063:temp", Unit: "Cel", Time: senmlNow, Value: f64(23.1)},
				{Name: "urn:dev:ow:10e2073a01080063:label", Time: senmlNow, String: str("Machine Room")},
				{Name: "urn:dev:ow:10e2073a01080063:open", Time: senmlNow, Bool: boolp(false)},
				{Name: "urn:dev:ow:10e2073a01080063:nfc-reader", Time: senmlNow, Data: str("aGkgCg")}}},
		{"5.1.6 collection of resources",
			`[{"bn":"2001:db8::2/","bt":1.320078429e+09,"n":"temperature","u":"Cel","v":27.2},
			  {"n":"humidity","u":"%RH","v":80}]`,
			[]SenMLRecord{
				{Name: "2001:db8::2/temperature", Unit: "Cel", Time: abs(1.320078429e+09), Value: f64(27.2)},
				{Name: "2001:db8::2/humidity", Unit: "%RH", Time: abs(1.320078429e+09), Value: f64(80)}}},
		{"base value, base sum, relative base time, base name changed midway",
			`[{"bn":"dev1:","bt":-60,"bv":100,"bs":10,"bu":"W","n":"p","v":1.5,"t":30},
			  {"n":"e","s":5},
			  {"n":"p","v":-1,"u":"kW","ut":60},
			  {"bn":"dev2:","bv":0,"bt":1.7e9,"n":"p","v":3}]`,
			[]SenMLRecord{
				{Name: "dev1:p", Unit: "W", Time: senmlNow.Add(-30 * time.Second), Value: f64(101.5)},
				{Name: "dev1:e", Unit: "W", Time: senmlNow.Add(-60 * time.Second), Sum: f64(15)},
				{Name: "dev1:p", Unit: "kW", Time: senmlNow.Add(-60 * time.Second), Value: f64(99), UpdateTime: 60},
				{Name: "dev2:p", Unit: "W", Time: abs(1.7e9), Value: f64(3)}}},
		{"unknown fields ignored, 2^28 is absolute, just under is relative",
			`[{"n":"a","v":1,"t":268435456,"foo":[1,2]},{"n":"b","v":2,"t":268435455}]`,
			[]SenMLRecord{
				{Name: "a", Time: abs(268435456), Value: f64(1)},
				{Name: "b", Time: senmlNow.Add(268435455 * time.Second), Value: f64(2)}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ResolveSenML([]byte(c.pack), senmlNow)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(c.want) {
				t.Fatalf("%d records, want %d: %+v", len(got), len(c.want), got)
			}
			for i := range got {
				if d := diffRecord(got[i], c.want[i]); d != "" {
					t.Errorf("record %d: %s\n got  %+v\n want %+v", i, d, got[i], c.want[i])
				}
			}
		})
	}
}

func diffRecord(g, w SenMLRecord) string {
	eqF := func(a, b *float64) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }
	eqS := func(a, b *string) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }
	switch {
	case g.Name != w.Name:
		return "name"
	case g.Unit != w.Unit:
		return "unit"
	case !g.Time.Equal(w.Time):
		return "time " + g.Time.Format(time.RFC3339Nano) + " want " + w.Time.Format(time.RFC3339Nano)
	case !eqF(g.Value, w.Value):
		return "value"
	case !eqS(g.String, w.String), !eqS(g.Data, w.Data):
		return "string/data value"
	case (g.Bool == nil) != (w.Bool == nil) || g.Bool != nil && *g.Bool != *w.Bool:
		return "bool value"
	case !eqF(g.Sum, w.Sum):
		return "sum"
	case g.UpdateTime != w.UpdateTime:
		return "update time"
	}
	return ""
}

func TestSenMLErrors(t *testing.T) {
	cases := []struct {
		pack, reason, msg string
	}{
		{`[{"bn":"d:","n":"a","v":1},{"n":"b","v":2},{"n":"c","v":3},{"n":"e","v":true}]`, "bad_value", `senml: record 3: field "v": not a number`},
		{`[{"n":"a","v":"1"}]`, "bad_value", `senml: record 0: field "v": not a number`},
		{`[{"n":"a","v":1e999}]`, "bad_value", `senml: record 0: field "v": number out of range`},
		{`[{"n":"a","bv":1e308,"v":1e308}]`, "bad_value", `senml: record 0: field "v": base value + value overflows`},
		{`[{"n":"a","v":1,"s":"x"}]`, "bad_value", `senml: record 0: field "s": not a number`},
		{`{"n":"a","v":1}`, "syntax", "senml: a pack must be a JSON array of objects, got object"},
		{`[1]`, "syntax", ""},
		{`[null]`, "syntax", `senml: record 0: not an object`},
		{`[{"n":"a","v":1}] x`, "syntax", ""},
		{`[{"n":"a","v":1}`, "syntax", ""},
		{`[]`, "empty", "senml: the pack has no records"},
		{`[{"n":"a"}]`, "no_value", `senml: record 0: none of "v", "vs", "vb", "vd", "s"`},
		{`[{"n":"a","v":1,"vs":"x"}]`, "ambiguous", ""},
		{`[{"n":"a","vb":true,"vd":"aa"}]`, "ambiguous", ""},
		{`[{"v":1}]`, "bad_name", `senml: record 0: name "": empty`},
		{`[{"n":"a b","v":1}]`, "bad_name", ""},
		{`[{"n":"a/+","v":1}]`, "bad_name", ""},
		{`[{"n":"a/#","v":1}]`, "bad_name", ""},
		{`[{"n":"_a","v":1}]`, "bad_name", `senml: record 0: name "_a": must start with a letter or digit`},
		{`[{"bn":"ok","v":1},{"bn":"-x","v":1}]`, "bad_name", ""},
		{`[{"n":7,"v":1}]`, "bad_field", `senml: record 0: field "n": not a string`},
		{`[{"n":"a","u":1,"v":1}]`, "bad_field", ""},
		{`[{"n":"a","vb":"true"}]`, "bad_field", `senml: record 0: field "vb": not a boolean`},
		{`[{"n":"a","vb":null}]`, "bad_field", ""},
		{`[{"n":"a","t":"now","v":1}]`, "bad_ts", `senml: record 0: field "t": not a number`},
		{`[{"n":"a","bt":1e300,"v":1}]`, "bad_ts", ""},
		{`[{"n":"a","t":-1e12,"v":1}]`, "bad_ts", ""},
		{`[{"n":"a","t":-2e9,"v":1}]`, "bad_ts", ""}, // before 1970
		{`[{"n":"a","ut":true,"v":1}]`, "bad_ts", ""},
		{`[{"bver":11,"n":"a","v":1}]`, "bad_version", `senml: record 0: field "bver": version 11 is newer than 10`},
		{`[{"bver":1.5,"n":"a","v":1}]`, "bad_version", ""},
		{`[{"n":"a","v":1},{"n":"b","v":1,"x_":1}]`, "must_understand", `senml: record 1: field "x_" must be understood and is not`},
	}
	for _, c := range cases {
		_, err := ResolveSenML([]byte(c.pack), senmlNow)
		if err == nil {
			t.Errorf("%s: no error", c.pack)
			continue
		}
		if Reason(err) != c.reason {
			t.Errorf("%s: reason %q, want %q (%v)", c.pack, Reason(err), c.reason, err)
		}
		if c.msg != "" && err.Error() != c.msg {
			t.Errorf("%s:\n got  %s\n want %s", c.pack, err, c.msg)
		}
		if !strings.HasPrefix(err.Error(), "senml: ") {
			t.Errorf("%s: message %q lacks the senml prefix", c.pack, err)
		}
	}
}

func TestSenMLDecode(t *testing.T) {
	d, err := NewSenML("")
	if err != nil {
		t.Fatal(err)
	}
	rs, err := d.DecodeAt("senml/gw", []byte(`[{"bn":"urn:dev:ow:10e2073a01080063:","bt":1.7e9,"n":"temp","u":"Cel","v":23.1},
		{"n":"label","vs":"Machine Room"},{"n":"open","vb":false},{"n":"hum","t":1,"v":40},{"n":"e","s":3}]`), senmlNow)
	if err != nil {
		t.Fatal(err)
	}
	want := []Reading{
		{"senml/gw/urn:dev:ow:10e2073a01080063:temp", abs(1.7e9), 23.1},
		{"senml/gw/urn:dev:ow:10e2073a01080063:hum", abs(1.7e9 + 1), 40},
	}
	if len(rs) != len(want) {
		t.Fatalf("got %v, want %v", rs, want)
	}
	for i := range rs {
		if rs[i].Stream != want[i].Stream || !rs[i].TS.Equal(want[i].TS) || rs[i].Value != want[i].Value {
			t.Errorf("reading %d: got %v, want %v", i, rs[i], want[i])
		}
	}
	if d.Skipped() != 3 {
		t.Errorf("skipped %d, want 3 (string, bool and sum-only records)", d.Skipped())
	}
	// Only non-numeric records: no readings, no error.
	rs, err = d.DecodeAt("senml/gw", []byte(`[{"n":"label","vs":"x"}]`), senmlNow)
	if err != nil || len(rs) != 0 || d.Skipped() != 4 {
		t.Errorf("string-only pack: %v %v skipped %d", rs, err, d.Skipped())
	}
	// A configured prefix; a topic with a wildcard (never from a broker) is
	// sanitised.
	d2, err := NewSenML("{topic}/senml")
	if err != nil {
		t.Fatal(err)
	}
	rs, err = d2.DecodeAt("a/+/#", []byte(`[{"n":"x","v":1}]`), senmlNow)
	if err != nil || len(rs) != 1 || rs[0].Stream != "a/_/_/senml/x" || !rs[0].TS.Equal(senmlNow) {
		t.Errorf("prefix: %v %v", rs, err)
	}
	// Decode without a receive time uses the clock.
	before := time.Now()
	rs, err = d.Decode("s", []byte(`[{"n":"x","v":1,"t":-10}]`))
	if err != nil || len(rs) != 1 || rs[0].TS.Before(before.Add(-11*time.Second)) || rs[0].TS.After(time.Now().Add(-9*time.Second)) {
		t.Errorf("relative to the clock: %v %v", rs, err)
	}
	for _, bad := range []string{"{name}", "a/+", "/x", "x/", "a//b", "{topic", "x}", "{camera}"} {
		if _, err := NewSenML(bad); err == nil {
			t.Errorf("prefix %q accepted", bad)
		}
	}
}
