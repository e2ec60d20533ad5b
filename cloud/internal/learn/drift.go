package learn

import (
	"math"
	"sort"
)

// KS is the two-sample Kolmogorov-Smirnov statistic of a and b: the largest
// distance between their empirical distribution functions.
func KS(a, b []float64) float64 {
	if len(a) == 0 || len(b) == 0 {
		return 0
	}
	x := append([]float64(nil), a...)
	y := append([]float64(nil), b...)
	sort.Float64s(x)
	sort.Float64s(y)
	var i, j int
	var d float64
	n, m := float64(len(x)), float64(len(y))
	for i < len(x) && j < len(y) {
		v := math.Min(x[i], y[j])
		for i < len(x) && x[i] <= v {
			i++
		}
		for j < len(y) && y[j] <= v {
			j++
		}
		d = math.Max(d, math.Abs(float64(i)/n-float64(j)/m))
	}
	return d
}

// KSCritical is the asymptotic critical value of the two-sample KS
// statistic at significance alpha for samples of n and m:
// sqrt(-ln(alpha/2)/2) · sqrt((n+m)/(n·m)).
func KSCritical(alpha float64, n, m int) float64 {
	if n == 0 || m == 0 {
		return math.Inf(1)
	}
	c := math.Sqrt(-math.Log(alpha/2) / 2)
	return c * math.Sqrt(float64(n+m)/float64(n*m))
}

// PageHinkley is the two-sided Page-Hinkley test on a series standardised
// by a reference mean and deviation: with z = (x - Mean)/Std, the upward
// sum U accumulates z - Delta and the downward sum D accumulates -z - Delta,
// each kept at or above zero (the CUSUM form of the test); drift when one
// exceeds Lambda.
type PageHinkley struct {
	Mean, Std     float64
	Delta, Lambda float64
	up, down      float64
}

// Add folds x in and returns the larger of the two sums and whether it
// exceeds Lambda.
func (p *PageHinkley) Add(x float64) (float64, bool) {
	std := p.Std
	if !(std > 1e-9*math.Max(1, math.Abs(p.Mean))) {
		std = 1e-9 * math.Max(1, math.Abs(p.Mean))
	}
	z := (x - p.Mean) / std
	p.up = math.Max(0, p.up+z-p.Delta)
	p.down = math.Max(0, p.down-z-p.Delta)
	s := math.Max(p.up, p.down)
	return s, s > p.Lambda
}

// Reset forgets the sums.
func (p *PageHinkley) Reset() { p.up, p.down = 0, 0 }

func meanStd(xs []float64) (float64, float64) {
	if len(xs) == 0 {
		return 0, 0
	}
	var s float64
	for _, x := range xs {
		s += x
	}
	mean := s / float64(len(xs))
	var ss float64
	for _, x := range xs {
		ss += (x - mean) * (x - mean)
	}
	return mean, math.Sqrt(ss / float64(len(xs)))
}

// quantile is the q-quantile of xs (nearest rank).
func quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

// KSCriticalEff is KSCritical for effective sample sizes n and m (see
// Effective): sqrt(-ln(alpha/2)/2) · sqrt((n+m)/(n·m)).
func KSCriticalEff(alpha, n, m float64) float64 {
	if !(n > 0) || !(m > 0) {
		return math.Inf(1)
	}
	return math.Sqrt(-math.Log(alpha/2)/2) * math.Sqrt((n+m)/(n*m))
}

// Effective is the effective sample size of xs, a series in time order:
// n/τ, where τ = 1 + 2·Σ ρ_k is its integrated autocorrelation time, the
// sum of the sample autocorrelations ρ_1, ρ_2, ... up to (not including)
// the first that is not positive, at most n/2 lags. Between 1 and n; n
// for a series without positive autocorrelation or without variance.
//
// The KS test assumes independent draws; windows sampled close together
// in time (overlapping, or from a slowly varying stream) are not, and
// counting each as a draw makes the critical value far too small. The
// empirical distribution function of a stationary series at a point has
// variance inflated by 1 + 2·Σ ρ_k(x), where ρ_k(x) are the
// autocorrelations of the indicators 1{X_t <= x}; for Gaussian series they
// are at most those of the series itself, so n/τ is a conservative
// effective size for the test.
func Effective(xs []float64) float64 {
	n := len(xs)
	if n < 3 {
		return float64(n)
	}
	mean, _ := meanStd(xs)
	var c0 float64
	for _, x := range xs {
		c0 += (x - mean) * (x - mean)
	}
	if !(c0 > 1e-12*float64(n)*math.Max(1, mean*mean)) {
		return float64(n)
	}
	tau := 1.0
	for k := 1; k <= n/2; k++ {
		var ck float64
		for i := k; i < n; i++ {
			ck += (xs[i] - mean) * (xs[i-k] - mean)
		}
		rho := ck / c0
		if rho <= 0 {
			break
		}
		tau += 2 * rho
	}
	return math.Max(1, float64(n)/tau)
}
