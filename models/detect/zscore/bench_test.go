package zscore

import (
	"math"
	"math/rand"
	"strconv"
	"testing"
)

// BenchmarkScoreFold is the cost of judging one reading (Score, then Fold)
// with a full window of the given size.
func BenchmarkScoreFold(b *testing.B) {
	for _, w := range []int{120, 1000} {
		b.Run("window="+strconv.Itoa(w), func(b *testing.B) {
			rng := rand.New(rand.NewSource(1))
			vals := make([]float64, 4096)
			for i := range vals {
				vals[i] = 20 + 2*math.Sin(float64(i)/30) + rng.NormFloat64()
			}
			s := New(w, 0)
			for i := 0; i < w; i++ {
				s.Fold(vals[i%len(vals)])
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				v := vals[i&4095]
				s.Score(v)
				s.Fold(v)
			}
		})
	}
}
