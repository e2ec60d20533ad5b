package eval

import (
	"math"
	"strconv"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/models/stock"
)

// BenchmarkEdgePipeline measures the edge's path per reading with the stock
// int8 model: decode a JSON reading, window, normalise, infer, score and
// decide (ModelDetector.Judge), with the manifest's thresholds (plain) and
// with the tuned settings (likelihood stage, novelty channel, range rule).
// b.N readings; readings/s = 1e9 / ns/op.
func BenchmarkEdgePipeline(b *testing.B) {
	b.Run("plain", func(b *testing.B) { benchPipeline(b, ModelConfig{}) })
	b.Run("tuned", func(b *testing.B) { benchPipeline(b, TunedEdge) })
}

func benchPipeline(b *testing.B, cfg ModelConfig) {
	m, model, err := stock.Load(stock.Edge)
	if err != nil {
		b.Fatal(err)
	}
	d, err := NewModelDetector(m, model, cfg, 1)
	if err != nil {
		b.Fatal(err)
	}
	payloads := make([][]byte, 1024)
	for i := range payloads {
		v := 50 + 10*math.Sin(float64(i)/20) + float64(i%7)/10
		payloads[i] = []byte(`{"ts":"2020-01-01T00:00:00Z","value":` + strconv.FormatFloat(v, 'g', -1, 64) + `}`)
	}
	vals := []float64{0}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		v, err := decodeValue(payloads[i%len(payloads)])
		if err != nil {
			b.Fatal(err)
		}
		vals[0] = v
		d.Judge(time.Time{}, vals)
	}
}

// decodeValue pulls the value out of {"ts":"…","value":n} without
// allocating, as a fast edge decoder does.
func decodeValue(p []byte) (float64, error) {
	const key = `"value":`
	for i := 0; i+len(key) <= len(p); i++ {
		if string(p[i:i+len(key)]) == key {
			j := i + len(key)
			k := j
			for k < len(p) && p[k] != '}' && p[k] != ',' {
				k++
			}
			return strconv.ParseFloat(string(p[j:k]), 64)
		}
	}
	return 0, strconv.ErrSyntax
}
