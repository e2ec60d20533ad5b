// Package train fits the stock models in pure Go and exports them as
// .tflite files: dense networks (fully connected layers, ReLU between them,
// a linear output) trained by mini-batch Adam on mean squared error with
// hand-written backpropagation, in float64, seeded and single-threaded so a
// run is reproducible bit for bit; and their export, as float32 models or
// quantised post-training to int8 the way TFLite's converter does
// (per-channel symmetric int8 weights, asymmetric int8 activations with
// ranges from calibration data, int32 biases; float32 input and output with
// QUANTIZE and DEQUANTIZE inside the model), written with tflwrite.
//
// The training data are windows of normal readings (windows.go): the
// probationary period of each NAB file (its first 15%, which NAB treats as
// normal and gives to detectors to learn from), never labels.
package train

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// MLP is a dense network: Sizes[0] inputs, Sizes[len-1] outputs, ReLU after
// every layer but the last. W[l] is layer l's weight matrix, row-major
// [Sizes[l+1]][Sizes[l]] (TFLite's FULLY_CONNECTED layout), B[l] its bias.
type MLP struct {
	Sizes []int
	W, B  [][]float64
}

// NewMLP returns a network with He-initialised weights and zero biases,
// drawn from a PCG seeded with seed.
func NewMLP(sizes []int, seed uint64) (*MLP, error) {
	if len(sizes) < 2 {
		return nil, fmt.Errorf("train: a network needs at least an input and an output size, got %v", sizes)
	}
	for _, s := range sizes {
		if s < 1 {
			return nil, fmt.Errorf("train: layer sizes %v", sizes)
		}
	}
	rng := rand.New(rand.NewPCG(seed, 0x6f7574706f7374))
	m := &MLP{Sizes: append([]int(nil), sizes...)}
	for l := 0; l+1 < len(sizes); l++ {
		in, out := sizes[l], sizes[l+1]
		w := make([]float64, in*out)
		sd := math.Sqrt(2 / float64(in))
		if l+2 == len(sizes) {
			sd = math.Sqrt(1 / float64(in))
		}
		for i := range w {
			w[i] = rng.NormFloat64() * sd
		}
		m.W = append(m.W, w)
		m.B = append(m.B, make([]float64, out))
	}
	return m, nil
}

// Layers is the number of weight layers.
func (m *MLP) Layers() int { return len(m.W) }

// MACs is the number of multiply-accumulates of one forward pass.
func (m *MLP) MACs() int {
	n := 0
	for l := 0; l+1 < len(m.Sizes); l++ {
		n += m.Sizes[l] * m.Sizes[l+1]
	}
	return n
}

// Forward returns the output for x, and every layer's activations (acts[0]
// is x, acts[l+1] the output of layer l after its ReLU, the last one
// linear).
func (m *MLP) Forward(x []float64) (out []float64, acts [][]float64) {
	acts = make([][]float64, len(m.Sizes))
	acts[0] = x
	for l := range m.W {
		in, n := m.Sizes[l], m.Sizes[l+1]
		y := make([]float64, n)
		w := m.W[l]
		prev := acts[l]
		last := l+1 == len(m.W)
		for o := 0; o < n; o++ {
			s := m.B[l][o]
			row := w[o*in : (o+1)*in]
			for i, v := range prev {
				s += row[i] * v
			}
			if !last && s < 0 {
				s = 0
			}
			y[o] = s
		}
		acts[l+1] = y
	}
	return acts[len(acts)-1], acts
}

// Predict returns the output for x.
func (m *MLP) Predict(x []float64) []float64 {
	out, _ := m.Forward(x)
	return out
}

// Config configures Fit. Zero fields take the defaults.
type Config struct {
	// Epochs over the training set. Default 20.
	Epochs int
	// Batch is the mini-batch size. Default 64.
	Batch int
	// LR is Adam's step size. Default 1e-3.
	LR float64
	// Seed seeds the initial weights and the shuffling.
	Seed uint64
	// Log, when set, is called after every epoch with the mean training
	// loss.
	Log func(epoch int, loss float64)
}

func (c Config) withDefaults() Config {
	if c.Epochs == 0 {
		c.Epochs = 20
	}
	if c.Batch == 0 {
		c.Batch = 64
	}
	if c.LR == 0 {
		c.LR = 1e-3
	}
	return c
}

// Fit trains a network of the given sizes on inputs xs and targets ys by
// mini-batch Adam (β1 0.9, β2 0.999) on the mean squared error, and returns
// it with the last epoch's mean loss. The same data and Config give the
// same network, bit for bit.
func Fit(sizes []int, xs, ys [][]float64, cfg Config) (*MLP, float64, error) {
	cfg = cfg.withDefaults()
	if len(xs) == 0 || len(xs) != len(ys) {
		return nil, 0, fmt.Errorf("train: %d inputs, %d targets", len(xs), len(ys))
	}
	m, err := NewMLP(sizes, cfg.Seed)
	if err != nil {
		return nil, 0, err
	}
	for k := range xs {
		if len(xs[k]) != sizes[0] || len(ys[k]) != sizes[len(sizes)-1] {
			return nil, 0, fmt.Errorf("train: example %d has %d inputs and %d targets, want %d and %d", k, len(xs[k]), len(ys[k]), sizes[0], sizes[len(sizes)-1])
		}
	}
	L := m.Layers()
	gw, gb := zerosLike(m.W), zerosLike(m.B)
	mw, mb := zerosLike(m.W), zerosLike(m.B)
	vw, vb := zerosLike(m.W), zerosLike(m.B)
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x7368756666))
	order := make([]int, len(xs))
	for i := range order {
		order[i] = i
	}
	deltas := make([][]float64, L+1)
	for l := 1; l <= L; l++ {
		deltas[l] = make([]float64, sizes[l])
	}
	const b1, b2, eps = 0.9, 0.999, 1e-8
	step := 0
	var loss float64
	for ep := 0; ep < cfg.Epochs; ep++ {
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		loss = 0
		for start := 0; start < len(order); start += cfg.Batch {
			end := min(start+cfg.Batch, len(order))
			clear2(gw)
			clear2(gb)
			for _, k := range order[start:end] {
				out, acts := m.Forward(xs[k])
				d := deltas[L]
				for o, v := range out {
					e := v - ys[k][o]
					loss += e * e / float64(len(out))
					d[o] = 2 * e / float64(len(out))
				}
				for l := L - 1; l >= 0; l-- {
					in, n := sizes[l], sizes[l+1]
					d := deltas[l+1]
					prev := acts[l]
					for o := 0; o < n; o++ {
						g := d[o]
						if g == 0 {
							continue
						}
						gb[l][o] += g
						row := gw[l][o*in : (o+1)*in]
						for i, v := range prev {
							row[i] += g * v
						}
					}
					if l == 0 {
						break
					}
					dp := deltas[l]
					for i := range dp {
						dp[i] = 0
					}
					for o := 0; o < n; o++ {
						g := d[o]
						if g == 0 {
							continue
						}
						row := m.W[l][o*in : (o+1)*in]
						for i := range dp {
							dp[i] += g * row[i]
						}
					}
					for i, a := range prev { // ReLU: gradient only where active
						if a <= 0 {
							dp[i] = 0
						}
					}
				}
			}
			step++
			scale := 1 / float64(end-start)
			lr := cfg.LR * math.Sqrt(1-math.Pow(b2, float64(step))) / (1 - math.Pow(b1, float64(step)))
			adam := func(p, g, mm, vv []float64) {
				for i := range p {
					gi := g[i] * scale
					mm[i] = b1*mm[i] + (1-b1)*gi
					vv[i] = b2*vv[i] + (1-b2)*gi*gi
					p[i] -= lr * mm[i] / (math.Sqrt(vv[i]) + eps)
				}
			}
			for l := 0; l < L; l++ {
				adam(m.W[l], gw[l], mw[l], vw[l])
				adam(m.B[l], gb[l], mb[l], vb[l])
			}
		}
		loss /= float64(len(xs))
		if cfg.Log != nil {
			cfg.Log(ep+1, loss)
		}
	}
	return m, loss, nil
}

func zerosLike(a [][]float64) [][]float64 {
	out := make([][]float64, len(a))
	for i := range a {
		out[i] = make([]float64, len(a[i]))
	}
	return out
}

func clear2(a [][]float64) {
	for _, r := range a {
		clear(r)
	}
}
