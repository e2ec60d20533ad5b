package tflwrite_test

import (
	"math"
	"math/rand"
	"testing"

	tflwrite "github.com/outpost-iot/outpost/models/tflite/write"
)

func TestQuantHelpers(t *testing.T) {
	q := tflwrite.Int8Params(-1, 3)
	if s := q.Scales[0]; math.Abs(float64(s)-4.0/255) > 1e-9 || q.ZeroPoints[0] != -64 {
		t.Fatalf("Int8Params(-1, 3) = %v %v, want 4/255 -64", q.Scales, q.ZeroPoints)
	}
	if z := tflwrite.QuantizeInt8([]float32{0, 3, -1, 100, -100}, q); z[0] != -64 || z[1] != 127 || z[2] != -128 || z[3] != 127 || z[4] != -128 {
		t.Fatalf("QuantizeInt8 = %v", z)
	}
	// A range without zero is widened to include it.
	if q := tflwrite.Int8Params(2, 5); q.ZeroPoints[0] != -128 || math.Abs(float64(q.Scales[0])-5.0/255) > 1e-9 {
		t.Fatalf("Int8Params(2, 5) = %v %v", q.Scales, q.ZeroPoints)
	}

	rng := rand.New(rand.NewSource(4))
	shape := []int{1, 3, 3, 4} // depthwise: channels last
	w := randFloats(rng, 36, 1)
	w[5] = 0 // channel 1
	qw, wq, err := tflwrite.QuantizeWeightsPerChannel(w, shape, 3)
	if err != nil {
		t.Fatal(err)
	}
	if wq.Dim != 3 || len(wq.Scales) != 4 {
		t.Fatalf("per-channel params %+v", wq)
	}
	hit127 := make([]bool, 4)
	for i, v := range w {
		c := i % 4
		s := float64(wq.Scales[c])
		if d := math.Abs(float64(qw[i])*s - float64(v)); d > s/2+1e-7 {
			t.Fatalf("weight %d: %v quantized to %d*%v", i, v, qw[i], s)
		}
		if qw[i] == 127 || qw[i] == -127 {
			hit127[c] = true
		}
	}
	for c, h := range hit127 {
		if !h {
			t.Errorf("channel %d: the largest weight does not map to ±127", c)
		}
	}
	if _, _, err := tflwrite.QuantizeWeightsPerChannel(w, []int{2, 3}, 0); err == nil {
		t.Error("shape mismatch accepted")
	}

	bias := []float32{0.5, -0.25, 0, 1}
	qb, bq, err := tflwrite.QuantizeBias(bias, 0.02, wq)
	if err != nil {
		t.Fatal(err)
	}
	for c := range bias {
		s := float64(float32(0.02) * wq.Scales[c])
		if float64(bq.Scales[c]) != s || bq.ZeroPoints[c] != 0 {
			t.Fatalf("bias channel %d scale %v, want %v", c, bq.Scales[c], s)
		}
		if d := math.Abs(float64(qb[c])*s - float64(bias[c])); d > s/2+1e-9 {
			t.Fatalf("bias %d: %v quantized to %d", c, bias[c], qb[c])
		}
	}
}

// TestQuantizedDenseModel quantizes a float two-layer dense network with
// the helpers (activation ranges calibrated on sample data, as the
// converter does), writes the int8 model with float input and output, and
// checks it against the float network within a few output steps.
func TestQuantizedDenseModel(t *testing.T) {
	raw, calib, float, ys := quantDenseModel(t)
	worst := 0.0
	for _, xv := range calib[:50] {
		ip := mustRun(t, raw, f32le(xv))
		_, want := float(xv)
		for o, g := range ip.Output(0).Float32s() {
			worst = math.Max(worst, math.Abs(float64(g)-want[o])/ys)
		}
	}
	// Input, hidden and output rounding add up to a few output steps.
	if worst > 4 {
		t.Fatalf("int8 model is %.2f output steps from the float one", worst)
	}
	t.Logf("int8 vs float: worst %.2f output steps (scale %g)", worst, ys)
}

// quantDenseModel returns the int8 model of TestQuantizedDenseModel, its
// calibration inputs, the float network and the output scale.
func quantDenseModel(t *testing.T) (raw []byte, calib [][]float32, float func([]float32) ([]float64, []float64), ys float64) {
	t.Helper()
	rng := rand.New(rand.NewSource(5))
	const In, H, Out = 8, 16, 4
	w1, b1 := randFloats(rng, H*In, 0.5), randFloats(rng, H, 0.2)
	w2, b2 := randFloats(rng, Out*H, 0.5), randFloats(rng, Out, 0.2)
	float = func(x []float32) (h, y []float64) {
		h = make([]float64, H)
		for o := range h {
			s := float64(b1[o])
			for i := 0; i < In; i++ {
				s += float64(x[i]) * float64(w1[o*In+i])
			}
			h[o] = math.Max(s, 0)
		}
		y = make([]float64, Out)
		for o := range y {
			s := float64(b2[o])
			for i := 0; i < H; i++ {
				s += h[i] * float64(w2[o*H+i])
			}
			y[o] = s
		}
		return h, y
	}
	// Calibrate.
	xlo, xhi, hhi, ylo, yhi := 0.0, 0.0, 0.0, 0.0, 0.0
	for k := 0; k < 200; k++ {
		x := randFloats(rng, In, 1)
		calib = append(calib, x)
		h, y := float(x)
		for _, v := range x {
			xlo, xhi = math.Min(xlo, float64(v)), math.Max(xhi, float64(v))
		}
		for _, v := range h {
			hhi = math.Max(hhi, v)
		}
		for _, v := range y {
			ylo, yhi = math.Min(ylo, v), math.Max(yhi, v)
		}
	}
	xq := tflwrite.Int8Params(float32(xlo), float32(xhi))
	hq := tflwrite.Int8Params(0, float32(hhi))
	yq := tflwrite.Int8Params(float32(ylo), float32(yhi))
	qw1, w1q := tflwrite.QuantizeWeightsPerTensor(w1)
	qb1, b1q, err := tflwrite.QuantizeBias(b1, xq.Scales[0], w1q)
	if err != nil {
		t.Fatal(err)
	}
	qw2, w2q, err := tflwrite.QuantizeWeightsPerChannel(w2, []int{Out, H}, 0)
	if err != nil {
		t.Fatal(err)
	}
	qb2, b2q, err := tflwrite.QuantizeBias(b2, hq.Scales[0], w2q)
	if err != nil {
		t.Fatal(err)
	}

	b := tflwrite.New("quantized dense")
	x := b.Input("x", tflwrite.Float32, []int{1, In}, nil)
	x8 := b.Tensor("x_int8", tflwrite.Int8, []int{1, In}, xq)
	b.Op(tflwrite.OpQuantize, []tflwrite.TensorID{x}, []tflwrite.TensorID{x8}, nil)
	h8 := b.Tensor("h", tflwrite.Int8, []int{1, H}, hq)
	b.Op(tflwrite.OpFullyConnected, []tflwrite.TensorID{x8,
		b.ConstInt8("w1", []int{H, In}, w1q, qw1), b.ConstInt32("b1", []int{H}, b1q, qb1)},
		[]tflwrite.TensorID{h8}, &tflwrite.FullyConnectedOptions{Activation: tflwrite.ActRelu})
	y8 := b.Tensor("y_int8", tflwrite.Int8, []int{1, Out}, yq)
	b.Op(tflwrite.OpFullyConnected, []tflwrite.TensorID{h8,
		b.ConstInt8("w2", []int{Out, H}, w2q, qw2), b.ConstInt32("b2", []int{Out}, b2q, qb2)},
		[]tflwrite.TensorID{y8}, nil)
	y := b.Tensor("y", tflwrite.Float32, []int{1, Out}, nil)
	b.Op(tflwrite.OpDequantize, []tflwrite.TensorID{y8}, []tflwrite.TensorID{y}, nil)
	b.Outputs(y)
	return mustBytes(t, b), calib, float, float64(yq.Scales[0])
}
