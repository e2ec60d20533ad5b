package decode

import (
	"testing"
)

// fastSeeds are payloads the fast path must take, and unusual ones it must
// either take correctly or leave to encoding/json.
var fastSeeds = []struct {
	payload string
	fast    bool // the fast path takes it
}{
	{`{"ts":"2026-01-02T03:04:05Z","value":21.5}`, true},
	{`{"ts":"2026-11-23T07:30:05.123Z","value":21.4375}`, true},
	{`{"ts":"2026-11-23T07:30:05.123456789123Z","value":1}`, true},
	{`{"ts":"2026-01-02T04:04:05+01:00","value":-3}`, true},
	{`{"ts":"1970-01-01T00:30:00+01:00","value":0}`, true},
	{`{"ts":"2024-02-29T23:59:59.5-23:59","value":-0}`, true},
	{` { "value" : 1e3 ,	"ts" : 1767323045000 }
`, true},
	{`{"ts":1767323045000,"value":-0.000123456789012}`, true},
	{`{"ts":1767323045000,"value":123456789012345.6}`, true},
	{`{"ts":1767323045000.5,"value":1}`, true},
	{`{"ts":1767323045000,"values":{"x":1,"a":2}}`, true},
	{`{"ts":1767323045000,"values":{"temp":21.5,"hum":40,"press":1013.25}}`, true},
	{`{"ts":0,"value":12345678901234567890}`, true},
	{`{"ts":0,"value":0.1e-320}`, true},
	{`{"ts":253402300799999,"value":1.7976931348623157e308}`, true},
	// Left to encoding/json.
	{`{"ts":1767323045000,"value":1e400}`, false},
	{`{"ts":"2026-02-29T00:00:00Z","value":1}`, false},
	{`{"ts":"1969-12-31T23:59:59Z","value":1}`, false},
	{`{"ts":"2026-01-02T03:04:05z","value":1}`, false},
	{`{"ts":"2026-01-02T03:04:05,5Z","value":1}`, false},
	{`{"ts":"2026-01-02T03:04:05Z","value":1,"unit":"C"}`, false},
	{`{"TS":1,"Value":2}`, false},
	{`{"ts":1,"value":2}}`, false},
	{`{"ts":1,"value":2,"value":3}`, false},
	{`{"ts":1,"values":{"a":1,"a":2}}`, false},
	{`{"ts":1,"values":{"a":null}}`, false},
	{`{"ts":1,"values":{}}`, false},
	{`{"ts":1,"value":null}`, false},
	{`{"ts":1,"value":01}`, false},
	{`{"ts":1,"value":1.}`, false},
	{`{"ts":1,"value":-}`, false},
	{`{"ts":1,"value":+1}`, false},
	{`{"ts":"\u0032026-01-02T03:04:05Z","value":1}`, false},
	{`{"ts":-1,"value":1}`, false},
	{`{"ts":1,"value":1,"values":{"a":1}}`, false},
	{`{"ts":1,"values":{"a/b":1}}`, false},
	{`{}`, false}, {`[]`, false}, {`null`, false}, {``, false}, {`{"ts":1,"value":2`, false},
}

// TestJSONFastTakesCommonPayloads keeps FuzzJSONFast from passing by the
// fast path declining everything: the common payloads go through it, with
// encoding/json's results and one allocation.
func TestJSONFastTakesCommonPayloads(t *testing.T) {
	for _, c := range fastSeeds {
		rs, ok := decodeJSONFast("s/t", []byte(c.payload))
		if ok != c.fast {
			t.Errorf("%s: fast path took it: %v, want %v", c.payload, ok, c.fast)
			continue
		}
		checkAgree(t, "s/t", []byte(c.payload))
		if ok && len(rs) == 1 {
			p := []byte(c.payload)
			if n := testing.AllocsPerRun(100, func() { decodeJSONFast("s/t", p) }); n != 1 {
				t.Errorf("%s: %v allocations, want 1", c.payload, n)
			}
		}
	}
}

// checkAgree fails unless the fast path, when it takes payload, gives
// exactly encoding/json's readings, and JSON.Decode agrees with
// encoding/json on acceptance, reason and readings.
func checkAgree(t *testing.T, topic string, payload []byte) {
	t.Helper()
	want, werr := decodeJSONStd(topic, payload)
	if fast, ok := decodeJSONFast(topic, payload); ok {
		if werr != nil {
			t.Fatalf("%q: fast path accepted %v, encoding/json: %v", payload, fast, werr)
		}
		sameReadings(t, payload, fast, want)
	}
	got, err := JSON{}.Decode(topic, payload)
	if (err == nil) != (werr == nil) || Reason(err) != Reason(werr) {
		t.Fatalf("%q: Decode error %v, encoding/json %v", payload, err, werr)
	}
	sameReadings(t, payload, got, want)
}

func sameReadings(t *testing.T, payload []byte, got, want []Reading) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%q: %v, encoding/json %v", payload, got, want)
	}
	for i := range got {
		// == on time.Time: same instant, same location, same encoding.
		if got[i] != want[i] {
			t.Fatalf("%q: reading %d: %#v, encoding/json %#v", payload, i, got[i], want[i])
		}
	}
}

// FuzzJSONFast checks that the hand-written JSON decoder agrees with
// encoding/json on every input: acceptance, reason, and readings.
func FuzzJSONFast(f *testing.F) {
	for _, c := range fastSeeds {
		f.Add("sensors/a/b", []byte(c.payload))
	}
	f.Fuzz(func(t *testing.T, topic string, payload []byte) {
		checkAgree(t, topic, payload)
	})
}
