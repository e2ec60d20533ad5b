package decode

import (
	"math"
	"testing"
	"time"
)

func TestJSON(t *testing.T) {
	ts := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	cases := []struct {
		payload string
		want    []Reading
		reason  string
	}{
		{`{"ts":"2026-01-02T03:04:05Z","value":21.5}`, []Reading{{"sensors/a/t", ts, 21.5}}, ""},
		{`{"ts":1767323045000,"value":-3}`, []Reading{{"sensors/a/t", ts, -3}}, ""},
		{`{"ts":"2026-01-02T04:04:05+01:00","values":{"x":1,"a":2}}`, []Reading{{"sensors/a/t/a", ts, 2}, {"sensors/a/t/x", ts, 1}}, ""},
		{`not json`, nil, "syntax"},
		{`{"ts":1}{}`, nil, "syntax"},
		{`{"value":1}`, nil, "no_ts"},
		{`{"ts":"yesterday","value":1}`, nil, "bad_ts"},
		{`{"ts":true,"value":1}`, nil, "bad_ts"},
		{`{"ts":-5,"value":1}`, nil, "bad_ts"},
		{`{"ts":1767323045000}`, nil, "no_value"},
		{`{"ts":1767323045000,"value":"hot"}`, nil, "bad_value"},
		{`{"ts":1767323045000,"values":{"a":null}}`, nil, ""},
		{`{"ts":1767323045000,"values":{"a/b":1}}`, nil, "bad_name"},
		{`{"ts":1767323045000,"value":1,"values":{"a":1}}`, nil, "ambiguous"},
	}
	for _, c := range cases {
		got, err := JSON{}.Decode("sensors/a/t", []byte(c.payload))
		if c.reason != "" {
			if err == nil || Reason(err) != c.reason {
				t.Errorf("%s: err = %v, want reason %q", c.payload, err, c.reason)
			}
			continue
		}
		if c.want == nil { // only that it does not crash
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.payload, err)
			continue
		}
		if len(got) != len(c.want) {
			t.Errorf("%s: got %v, want %v", c.payload, got, c.want)
			continue
		}
		for i := range got {
			if got[i].Stream != c.want[i].Stream || !got[i].TS.Equal(c.want[i].TS) || got[i].Value != c.want[i].Value {
				t.Errorf("%s: got %v, want %v", c.payload, got[i], c.want[i])
			}
		}
	}
}

func TestRegistry(t *testing.T) {
	r := NewRegistry()
	if _, err := r.New("json"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.New("xml"); err == nil {
		t.Fatal("unknown decoder accepted")
	}
	r.Register("const", func() Decoder {
		return DecoderFunc(func(topic string, _ []byte) ([]Reading, error) { return []Reading{{Stream: topic}}, nil })
	})
	d, err := r.New("const")
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := d.Decode("x", nil); len(got) != 1 || got[0].Stream != "x" {
		t.Fatalf("registered decoder not used: %v", got)
	}
}

func FuzzJSON(f *testing.F) {
	for _, s := range []string{
		`{"ts":"2026-01-02T03:04:05Z","value":21.5}`,
		`{"ts":1767323045000,"values":{"a":1,"b":2.5e3}}`,
		`{"ts":1e300,"value":1}`, `{}`, `[]`, `null`, `{"ts":"","value":null}`,
	} {
		f.Add("sensors/a/b", []byte(s))
	}
	f.Fuzz(func(t *testing.T, topic string, payload []byte) {
		rs, err := JSON{}.Decode(topic, payload)
		if err != nil {
			if Reason(err) == "other" {
				t.Fatalf("error without a reason: %v", err)
			}
			return
		}
		if len(rs) == 0 {
			t.Fatal("no error and no readings")
		}
		for _, r := range rs {
			if math.IsNaN(r.Value) || math.IsInf(r.Value, 0) {
				t.Fatalf("non-finite value %v", r.Value)
			}
			if r.TS.Year() < 1970 || r.TS.Year() > 9999 {
				t.Fatalf("time %v out of range", r.TS)
			}
			if r.Stream != topic && len(r.Stream) <= len(topic)+1 {
				t.Fatalf("stream %q from topic %q", r.Stream, topic)
			}
		}
	})
}
