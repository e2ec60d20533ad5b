package decode

import (
	"testing"
)

// benchJSON decodes one payload repeatedly; readings/s is per core.
func benchJSON(b *testing.B, payload string) {
	p := []byte(payload)
	d := JSON{}
	n := 0
	b.ReportAllocs()
	for b.Loop() {
		rs, err := d.Decode("sensors/dev-1/temp", p)
		if err != nil {
			b.Fatal(err)
		}
		n += len(rs)
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "readings/s")
}

// BenchmarkJSON is the stock JSON reading decoder on the payloads sensorsim
// and typical sensors send.
func BenchmarkJSON(b *testing.B) {
	for _, c := range []struct{ name, payload string }{
		{"rfc3339", `{"ts":"2026-11-23T07:30:05.123Z","value":21.4375}`},
		{"unixms", `{"ts":1795505405123,"value":21.4375}`},
		{"values3", `{"ts":1795505405123,"values":{"temp":21.5,"hum":40,"press":1013.25}}`},
		{"offset", `{"ts":"2026-11-23T08:30:05+01:00","value":-3}`},
	} {
		b.Run(c.name, func(b *testing.B) { benchJSON(b, c.payload) })
	}
}
