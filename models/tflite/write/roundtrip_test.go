package tflwrite_test

// Round trips: models built here are written, loaded by the runtime
// (package tflite), run, and compared with a float64 computation done in
// the test, or with the corpus model they copy.
//
// The official runtime: python3 on this machine has no tflite_runtime or
// ai-edge-litert (PyPI is unreachable) and there is no C++ TFLite build,
// so the classic Python check cannot run here. Instead,
// TestOfficialRuntimeLiteRT (litert_test.go) runs written models in
// LiteRT.js 2.5.3 (the official runtime built to WebAssembly, from npm)
// under node when testdata/litert/node_modules is installed. The layout
// facts are checked byte by byte in TestFormatFacts, and TestRewriteCorpus
// shows that re-writing every official corpus model through this package
// gives files that run identically.

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/outpost-iot/outpost/models/tflite"
	tflwrite "github.com/outpost-iot/outpost/models/tflite/write"
)

func mustBytes(t *testing.T, b *tflwrite.Builder) []byte {
	t.Helper()
	raw, err := b.Bytes()
	if err != nil {
		t.Fatalf("Bytes: %v", err)
	}
	return raw
}

func mustRun(t *testing.T, raw []byte, inputs ...[]byte) *tflite.Interpreter {
	t.Helper()
	m, err := tflite.Load(raw)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	ip, err := m.NewInterpreter()
	if err != nil {
		t.Fatalf("NewInterpreter: %v", err)
	}
	if len(inputs) != len(ip.Inputs()) {
		t.Fatalf("%d inputs given, model has %d", len(inputs), len(ip.Inputs()))
	}
	for i, in := range inputs {
		if len(in) != len(ip.Input(i).Bytes()) {
			t.Fatalf("input %d: %d bytes, tensor has %d", i, len(in), len(ip.Input(i).Bytes()))
		}
		copy(ip.Input(i).Bytes(), in)
	}
	if err := ip.Invoke(); err != nil {
		t.Fatalf("Invoke: %v", err)
	}
	return ip
}

func f32le(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

func randFloats(rng *rand.Rand, n int, scale float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32((rng.Float64()*2 - 1) * scale)
	}
	return v
}

func near(t *testing.T, what string, got []float32, want []float64, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for i := range got {
		if d := math.Abs(float64(got[i]) - want[i]); !(d <= tol+tol*math.Abs(want[i])) {
			t.Fatalf("%s[%d] = %v, want %v (diff %g)", what, i, got[i], want[i], d)
		}
	}
}

// nhwc is a float64 reference tensor.
type nhwc struct {
	n, h, w, c int
	v          []float64
}

func newNHWC(n, h, w, c int) *nhwc { return &nhwc{n, h, w, c, make([]float64, n*h*w*c)} }

func fromF32(n, h, w, c int, v []float32) *nhwc {
	x := newNHWC(n, h, w, c)
	for i := range v {
		x.v[i] = float64(v[i])
	}
	return x
}

func (x *nhwc) at(b, i, j, k int) float64 { return x.v[((b*x.h+i)*x.w+j)*x.c+k] }
func (x *nhwc) set(b, i, j, k int, v float64) {
	x.v[((b*x.h+i)*x.w+j)*x.c+k] = v
}

func samePad(in, k, s int) (out, before int) {
	out = (in + s - 1) / s
	total := max((out-1)*s+k-in, 0)
	return out, total / 2
}

// conv computes CONV_2D (filter OHWI) or, when depthwise, DEPTHWISE_CONV_2D
// (filter 1HWC, depth multiplier 1) in float64.
func conv(x *nhwc, f []float32, fo, kh, kw, fi int, bias []float32, stride int, same, depthwise bool, relu bool) *nhwc {
	oh, ow, pt, pl := (x.h-kh)/stride+1, (x.w-kw)/stride+1, 0, 0
	if same {
		oh, pt = samePad(x.h, kh, stride)
		ow, pl = samePad(x.w, kw, stride)
	}
	oc := fo
	if depthwise {
		oc = x.c
	}
	y := newNHWC(x.n, oh, ow, oc)
	for b := 0; b < x.n; b++ {
		for i := 0; i < oh; i++ {
			for j := 0; j < ow; j++ {
				for o := 0; o < oc; o++ {
					s := float64(bias[o])
					for di := 0; di < kh; di++ {
						for dj := 0; dj < kw; dj++ {
							ii, jj := i*stride-pt+di, j*stride-pl+dj
							if ii < 0 || ii >= x.h || jj < 0 || jj >= x.w {
								continue
							}
							if depthwise {
								s += x.at(b, ii, jj, o) * float64(f[(di*kw+dj)*oc+o])
								continue
							}
							for c := 0; c < fi; c++ {
								s += x.at(b, ii, jj, c) * float64(f[((o*kh+di)*kw+dj)*fi+c])
							}
						}
					}
					if relu {
						s = math.Max(s, 0)
					}
					y.set(b, i, j, o, s)
				}
			}
		}
	}
	return y
}

func sigmoid(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

// TestFloatOpsRoundTrip builds a small float 1-D conv network that uses
// most operators our tooling emits (PAD, CONV_2D, DEPTHWISE_CONV_2D, ADD,
// MUL, SUB, LOGISTIC, TANH, CONCATENATION, STRIDED_SLICE, MEAN, RESHAPE,
// FULLY_CONNECTED, RELU, SOFTMAX), writes it, runs it in the runtime and
// compares with the same computation in float64.
func TestFloatOpsRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	n := newFloatOpsNet(rng)
	raw := mustBytes(t, n.build())
	for trial := 0; trial < 5; trial++ {
		xv := randFloats(rng, n.W*n.C, 2)
		ip := mustRun(t, raw, f32le(xv))
		probs, relu, slice := n.ref(xv)
		near(t, "slice", ip.Output(2).Float32s(), slice, 1e-5)
		near(t, "relu", ip.Output(1).Float32s(), relu, 1e-5)
		near(t, "probs", ip.Output(0).Float32s(), probs, 1e-5)
	}
}

// floatOpsNet is the network of TestFloatOpsRoundTrip: its weights, the
// model built from them, and the float64 reference.
type floatOpsNet struct {
	W, C, F                                int
	convW, convB, dwW, dwB, mulC, fcW, fcB []float32
}

func newFloatOpsNet(rng *rand.Rand) *floatOpsNet {
	const W, C, F = 8, 2, 4
	return &floatOpsNet{W: W, C: C, F: F,
		convW: randFloats(rng, F*1*3*C, 0.5), convB: randFloats(rng, F, 0.1),
		dwW: randFloats(rng, 1*1*3*F, 0.5), dwB: randFloats(rng, F, 0.1),
		mulC: randFloats(rng, F, 1),
		fcW:  randFloats(rng, 3*2*F, 0.5), fcB: randFloats(rng, 3, 0.1)}
}

func (n *floatOpsNet) build() *tflwrite.Builder {
	W, C, F := n.W, n.C, n.F
	convW, convB, dwW, dwB, mulC, fcW, fcB := n.convW, n.convB, n.dwW, n.dwB, n.mulC, n.fcW, n.fcB
	b := tflwrite.New("float ops round trip")
	x := b.Input("x", tflwrite.Float32, []int{1, 1, W, C}, nil)
	pads := b.ConstInt32("pads", []int{4, 2}, nil, []int32{0, 0, 0, 0, 1, 1, 0, 0})
	xp := b.Tensor("padded", tflwrite.Float32, []int{1, 1, W + 2, C}, nil)
	b.Op(tflwrite.OpPad, []tflwrite.TensorID{x, pads}, []tflwrite.TensorID{xp}, nil)
	cw := b.ConstFloat32("conv/w", []int{F, 1, 3, C}, convW)
	cb := b.ConstFloat32("conv/b", []int{F}, convB)
	h1 := b.Tensor("conv", tflwrite.Float32, []int{1, 1, W, F}, nil)
	b.Op(tflwrite.OpConv2D, []tflwrite.TensorID{xp, cw, cb}, []tflwrite.TensorID{h1},
		&tflwrite.Conv2DOptions{Padding: tflwrite.PaddingValid, StrideW: 1, StrideH: 1, Activation: tflwrite.ActRelu})
	dw := b.ConstFloat32("dw/w", []int{1, 1, 3, F}, dwW)
	db := b.ConstFloat32("dw/b", []int{F}, dwB)
	h2 := b.Tensor("dw", tflwrite.Float32, []int{1, 1, W, F}, nil)
	b.Op(tflwrite.OpDepthwiseConv2D, []tflwrite.TensorID{h1, dw, db}, []tflwrite.TensorID{h2},
		&tflwrite.DepthwiseConv2DOptions{Padding: tflwrite.PaddingSame, StrideW: 1, StrideH: 1, DepthMultiplier: 1})
	sum := b.Tensor("residual", tflwrite.Float32, []int{1, 1, W, F}, nil)
	b.Op(tflwrite.OpAdd, []tflwrite.TensorID{h1, h2}, []tflwrite.TensorID{sum}, nil)
	mc := b.ConstFloat32("scale", []int{F}, mulC)
	prod := b.Tensor("scaled", tflwrite.Float32, []int{1, 1, W, F}, nil)
	b.Op(tflwrite.OpMul, []tflwrite.TensorID{sum, mc}, []tflwrite.TensorID{prod}, nil)
	diff := b.Tensor("diff", tflwrite.Float32, []int{1, 1, W, F}, nil)
	b.Op(tflwrite.OpSub, []tflwrite.TensorID{prod, h2}, []tflwrite.TensorID{diff}, nil)
	sg := b.Tensor("sigmoid", tflwrite.Float32, []int{1, 1, W, F}, nil)
	b.Op(tflwrite.OpLogistic, []tflwrite.TensorID{diff}, []tflwrite.TensorID{sg}, nil)
	th := b.Tensor("tanh", tflwrite.Float32, []int{1, 1, W, F}, nil)
	b.Op(tflwrite.OpTanh, []tflwrite.TensorID{sum}, []tflwrite.TensorID{th}, nil)
	cat := b.Tensor("concat", tflwrite.Float32, []int{1, 1, W, 2 * F}, nil)
	b.Op(tflwrite.OpConcatenation, []tflwrite.TensorID{sg, th}, []tflwrite.TensorID{cat}, &tflwrite.ConcatenationOptions{Axis: 3})
	begin := b.ConstInt32("begin", []int{4}, nil, []int32{0, 0, 1, 0})
	end := b.ConstInt32("end", []int{4}, nil, []int32{1, 1, 7, int32(2 * F)})
	strides := b.ConstInt32("strides", []int{4}, nil, []int32{1, 1, 2, 1})
	sl := b.Tensor("slice", tflwrite.Float32, []int{1, 1, 3, 2 * F}, nil)
	b.Op(tflwrite.OpStridedSlice, []tflwrite.TensorID{cat, begin, end, strides}, []tflwrite.TensorID{sl}, nil)
	axes := b.ConstInt32("axes", []int{2}, nil, []int32{1, 2})
	mean := b.Tensor("mean", tflwrite.Float32, []int{1, 1, 1, 2 * F}, nil)
	b.Op(tflwrite.OpMean, []tflwrite.TensorID{sl, axes}, []tflwrite.TensorID{mean}, &tflwrite.ReducerOptions{KeepDims: true})
	newShape := b.ConstInt32("shape", []int{2}, nil, []int32{1, int32(2 * F)})
	flat := b.Tensor("flat", tflwrite.Float32, []int{1, 2 * F}, nil)
	b.Op(tflwrite.OpReshape, []tflwrite.TensorID{mean, newShape}, []tflwrite.TensorID{flat}, &tflwrite.ReshapeOptions{NewShape: []int{1, 2 * F}})
	fw := b.ConstFloat32("fc/w", []int{3, 2 * F}, fcW)
	fbias := b.ConstFloat32("fc/b", []int{3}, fcB)
	logits := b.Tensor("logits", tflwrite.Float32, []int{1, 3}, nil)
	b.Op(tflwrite.OpFullyConnected, []tflwrite.TensorID{flat, fw, fbias}, []tflwrite.TensorID{logits}, nil)
	rl := b.Tensor("relu", tflwrite.Float32, []int{1, 3}, nil)
	b.Op(tflwrite.OpRelu, []tflwrite.TensorID{logits}, []tflwrite.TensorID{rl}, nil)
	probs := b.Tensor("probs", tflwrite.Float32, []int{1, 3}, nil)
	b.Op(tflwrite.OpSoftmax, []tflwrite.TensorID{logits}, []tflwrite.TensorID{probs}, &tflwrite.SoftmaxOptions{Beta: 1})
	b.Outputs(probs, rl, sl)
	return b
}

// ref computes the network in float64: the softmax probabilities, the
// ReLU of the logits and the strided slice.
func (n *floatOpsNet) ref(xv []float32) (pr, relu, slR []float64) {
	W, C, F := n.W, n.C, n.F
	convW, convB, dwW, dwB, mulC, fcW, fcB := n.convW, n.convB, n.dwW, n.dwB, n.mulC, n.fcW, n.fcB
	{
		xr := fromF32(1, 1, W, C, xv)
		padded := newNHWC(1, 1, W+2, C)
		for j := 0; j < W; j++ {
			for c := 0; c < C; c++ {
				padded.set(0, 0, j+1, c, xr.at(0, 0, j, c))
			}
		}
		r1 := conv(padded, convW, F, 1, 3, C, convB, 1, false, false, true)
		r2 := conv(r1, dwW, F, 1, 3, 1, dwB, 1, true, true, false)
		catR := newNHWC(1, 1, W, 2*F)
		for j := 0; j < W; j++ {
			for c := 0; c < F; c++ {
				s := r1.at(0, 0, j, c) + r2.at(0, 0, j, c)
				p := s * float64(mulC[c])
				catR.set(0, 0, j, c, sigmoid(p-r2.at(0, 0, j, c)))
				catR.set(0, 0, j, F+c, math.Tanh(s))
			}
		}
		meanR := make([]float64, 2*F)
		for _, j := range []int{1, 3, 5} {
			for c := 0; c < 2*F; c++ {
				slR = append(slR, catR.at(0, 0, j, c))
				meanR[c] += catR.at(0, 0, j, c) / 3
			}
		}
		lg := make([]float64, 3)
		var mx float64 = math.Inf(-1)
		for o := range lg {
			s := float64(fcB[o])
			for c := 0; c < 2*F; c++ {
				s += meanR[c] * float64(fcW[o*2*F+c])
			}
			lg[o] = s
			relu = append(relu, math.Max(s, 0))
			mx = math.Max(mx, s)
		}
		var z float64
		for _, v := range lg {
			z += math.Exp(v - mx)
		}
		for _, v := range lg {
			pr = append(pr, math.Exp(v-mx)/z)
		}
	}
	return pr, relu, slR
}

// quantize rounds half away from zero, as TFLite's reference QUANTIZE.
func quantize(x float64, scale float64, zp int64, lo, hi int64) int64 {
	q := int64(math.Round(x/scale)) + zp
	return min(max(q, lo), hi)
}

// int8ConvNet is the network of TestInt8PerChannelConvRoundTrip.
type int8ConvNet struct {
	wScales, bScales []float32
	wq               []int8
	bq               []int32
}

func newInt8ConvNet(rng *rand.Rand) *int8ConvNet {
	const W, C, F, K = 16, 3, 6, 3
	inScale := 4.0 / 255
	n := &int8ConvNet{wScales: make([]float32, F), wq: make([]int8, F*K*C), bq: make([]int32, F), bScales: make([]float32, F)}
	for o := 0; o < F; o++ {
		n.wScales[o] = float32(0.002 + 0.01*rng.Float64())
		n.bScales[o] = float32(inScale) * n.wScales[o]
		n.bq[o] = int32(rng.Intn(2001) - 1000)
		for k := 0; k < K*C; k++ {
			n.wq[o*K*C+k] = int8(rng.Intn(255) - 127)
		}
	}
	return n
}

// build returns the model (float input, float output 0; with int8Out the
// int8 conv output is output 1), the weights tensor and the conv operator.
func (n *int8ConvNet) build(int8Out bool) (*tflwrite.Builder, tflwrite.TensorID, int) {
	const W, C, F, K = 16, 3, 6, 3
	inScale, inZP := 4.0/255, int64(-3)
	outScale, outZP := 0.05, int64(-10)
	b := tflwrite.New("int8 per-channel conv")
	x := b.Input("x", tflwrite.Float32, []int{1, 1, W, C}, nil)
	xq := b.Tensor("x_int8", tflwrite.Int8, []int{1, 1, W, C}, tflwrite.PerTensor(float32(inScale), inZP))
	b.Op(tflwrite.OpQuantize, []tflwrite.TensorID{x}, []tflwrite.TensorID{xq}, nil)
	w := b.ConstInt8("conv/w", []int{F, 1, K, C}, tflwrite.PerChannel(n.wScales, nil, 0), n.wq)
	bias := b.ConstInt32("conv/b", []int{F}, tflwrite.PerChannel(n.bScales, nil, 0), n.bq)
	yq := b.Tensor("y_int8", tflwrite.Int8, []int{1, 1, W, F}, tflwrite.PerTensor(float32(outScale), outZP))
	convOp := b.Op(tflwrite.OpConv2D, []tflwrite.TensorID{xq, w, bias}, []tflwrite.TensorID{yq},
		&tflwrite.Conv2DOptions{Padding: tflwrite.PaddingSame, StrideW: 1, StrideH: 1, Activation: tflwrite.ActRelu})
	y := b.Tensor("y", tflwrite.Float32, []int{1, 1, W, F}, nil)
	b.Op(tflwrite.OpDequantize, []tflwrite.TensorID{yq}, []tflwrite.TensorID{y}, nil)
	b.Outputs(y)
	if int8Out {
		b.Outputs(yq)
	}
	return b, w, convOp
}

// TestInt8PerChannelConvRoundTrip: float input -> QUANTIZE -> int8 CONV_2D
// with per-channel weights and int32 biases -> DEQUANTIZE. The runtime
// must read back the per-channel parameters and agree, within one output
// step, with a float64 convolution of the quantized values.
func TestInt8PerChannelConvRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewSource(2))
	const W, C, F, K = 16, 3, 6, 3
	inScale, inZP := 4.0/255, int64(-3)
	outScale, outZP := 0.05, int64(-10)
	n := newInt8ConvNet(rng)
	wScales, wq, bq := n.wScales, n.wq, n.bq
	b, w, convOp := n.build(true)
	if v := b.OpVersion(convOp); v != 3 {
		t.Errorf("int8 CONV_2D version %d, want 3 (as the converter writes)", v)
	}
	raw := mustBytes(t, b)

	m, err := tflite.Load(raw)
	if err != nil {
		t.Fatal(err)
	}
	wi := m.Tensors()[w]
	if wi.Type != tflite.Int8 || wi.Quantization.Dim != 0 || len(wi.Quantization.Scales) != F {
		t.Fatalf("weights read back as %s %+v", wi.Type, wi.Quantization)
	}
	for o := range wScales {
		if wi.Quantization.Scales[o] != wScales[o] || wi.Quantization.ZeroPoints[o] != 0 {
			t.Fatalf("channel %d: scale %v zp %d, wrote %v 0", o, wi.Quantization.Scales[o], wi.Quantization.ZeroPoints[o], wScales[o])
		}
	}
	if !bytes.Equal(wi.Data, func() []byte {
		d := make([]byte, len(wq))
		for i, v := range wq {
			d[i] = byte(v)
		}
		return d
	}()) {
		t.Fatal("weights data read back differs")
	}
	if m.Operators()[1].Name != "CONV_2D" || m.Operators()[1].Version != 3 {
		t.Fatalf("operator 1 is %s v%d", m.Operators()[1].Name, m.Operators()[1].Version)
	}

	for trial := 0; trial < 5; trial++ {
		xv := randFloats(rng, W*C, 1.5)
		ip := mustRun(t, raw, f32le(xv))
		xr := newNHWC(1, 1, W, C)
		for i, v := range xv {
			xr.v[i] = float64(quantize(float64(v), inScale, inZP, -128, 127)-inZP) * inScale
		}
		wf := make([]float32, len(wq))
		for o := 0; o < F; o++ {
			for k := 0; k < K*C; k++ {
				wf[o*K*C+k] = float32(float64(wq[o*K*C+k]) * float64(wScales[o]))
			}
		}
		bf := make([]float32, F)
		for o := range bf {
			bf[o] = float32(float64(bq[o]) * inScale * float64(wScales[o]))
		}
		ref := conv(xr, wf, F, 1, K, C, bf, 1, true, false, true)
		got := ip.Output(1).Int8s()
		deq := ip.Output(0).Float32s()
		for i, r := range ref.v {
			want := quantize(r, outScale, outZP, -128, 127)
			if d := int64(got[i]) - want; d < -1 || d > 1 {
				t.Fatalf("trial %d element %d: int8 %d, float reference quantizes to %d (%v)", trial, i, got[i], want, r)
			}
			if d := float64(deq[i]) - float64(int64(got[i])-outZP)*outScale; math.Abs(d) > 1e-6 {
				t.Fatalf("element %d: dequantized %v from %d", i, deq[i], got[i])
			}
		}
	}
}

// corpusDir is the conformance corpus (models/testdata/tflite).
const corpusDir = "../../testdata/tflite"

type corpusCase struct {
	name    string
	inputs  [][]byte
	outputs [][]byte
}

func corpusCases(t *testing.T, model string) []corpusCase {
	t.Helper()
	dir := filepath.Join(corpusDir, model)
	mb, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var man struct {
		Cases []struct {
			Name    string   `json:"name"`
			Inputs  []string `json:"inputs"`
			Outputs []string `json:"outputs"`
		} `json:"cases"`
	}
	if err := json.Unmarshal(mb, &man); err != nil {
		t.Fatal(err)
	}
	var cs []corpusCase
	for _, c := range man.Cases {
		cc := corpusCase{name: c.Name}
		for _, f := range c.Inputs {
			b, err := os.ReadFile(filepath.Join(dir, f))
			if err != nil {
				t.Fatal(err)
			}
			cc.inputs = append(cc.inputs, b)
		}
		for _, f := range c.Outputs {
			b, err := os.ReadFile(filepath.Join(dir, f))
			if err != nil {
				t.Fatal(err)
			}
			cc.outputs = append(cc.outputs, b)
		}
		cs = append(cs, cc)
	}
	return cs
}

func corpusModels(t *testing.T) []string {
	t.Helper()
	ents, err := os.ReadDir(corpusDir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	if len(names) == 0 {
		t.Fatal("empty corpus")
	}
	return names
}

// runCases runs every case on fresh interpreters of both models and
// requires byte-identical outputs.
func sameOutputs(t *testing.T, a, b *tflite.Model, cases []corpusCase) {
	t.Helper()
	for _, c := range cases {
		var outs [2][][]byte
		for k, m := range []*tflite.Model{a, b} {
			ip, err := m.NewInterpreter()
			if err != nil {
				t.Fatal(err)
			}
			for i, in := range c.inputs {
				copy(ip.Input(i).Bytes(), in)
			}
			if err := ip.Invoke(); err != nil {
				t.Fatalf("case %s: Invoke: %v", c.name, err)
			}
			for _, o := range ip.Outputs() {
				outs[k] = append(outs[k], bytes.Clone(o.Bytes()))
			}
		}
		for i := range outs[0] {
			if !bytes.Equal(outs[0][i], outs[1][i]) {
				t.Fatalf("case %s: output %d differs between the original and the re-written model", c.name, i)
			}
		}
	}
}

// TestHelloWorldFloatRebuilt builds, with the public builder API, a model
// with hello_world_float's structure (three dense layers, ReLU on the
// first two) whose weights are read through the runtime's inspection API,
// and checks it gives byte-identical outputs to the official model on
// every golden case, and the golden outputs within 1e-5.
func TestHelloWorldFloatRebuilt(t *testing.T) {
	orig, raw := helloWorldRebuilt(t)
	re, err := tflite.Load(raw)
	if err != nil {
		t.Fatal(err)
	}
	cases := corpusCases(t, "hello_world_float")
	sameOutputs(t, orig, re, cases)
	for _, c := range cases {
		ip := mustRun(t, raw, c.inputs...)
		got := ip.Output(0).Float32s()[0]
		want := math.Float32frombits(binary.LittleEndian.Uint32(c.outputs[0]))
		if math.Abs(float64(got-want)) > 1e-5 {
			t.Fatalf("case %s: %v, golden %v", c.name, got, want)
		}
	}
	if v := re.Operators()[0].Version; v != 1 {
		t.Errorf("float FULLY_CONNECTED written as version %d, want 1", v)
	}
}

// helloWorldRebuilt loads the corpus hello_world_float and builds the same
// network with the builder API, from the weights the runtime exposes.
func helloWorldRebuilt(t *testing.T) (*tflite.Model, []byte) {
	t.Helper()
	orig, err := tflite.LoadFile(filepath.Join(corpusDir, "hello_world_float", "model.tflite"))
	if err != nil {
		t.Fatal(err)
	}
	ts := orig.Tensors()
	b := tflwrite.New("hello_world_float, re-built")
	in := ts[orig.InputIndices()[0]]
	prev := b.Input(in.Name, tflwrite.Float32, in.Shape, nil)
	acts := []tflwrite.Activation{tflwrite.ActRelu, tflwrite.ActRelu, tflwrite.ActNone}
	if len(orig.Operators()) != len(acts) {
		t.Fatalf("hello_world_float has %d operators, want 3", len(orig.Operators()))
	}
	for k, o := range orig.Operators() {
		if o.Name != "FULLY_CONNECTED" {
			t.Fatalf("operator %d is %s", k, o.Name)
		}
		wi, bi, oi := ts[o.Inputs[1]], ts[o.Inputs[2]], ts[o.Outputs[0]]
		w := b.Const(wi.Name, tflwrite.Float32, wi.Shape, nil, wi.Data)
		bias := b.Const(bi.Name, tflwrite.Float32, bi.Shape, nil, bi.Data)
		out := b.Tensor(oi.Name, tflwrite.Float32, oi.Shape, nil)
		b.Op(tflwrite.OpFullyConnected, []tflwrite.TensorID{prev, w, bias}, []tflwrite.TensorID{out},
			&tflwrite.FullyConnectedOptions{Activation: acts[k]})
		prev = out
	}
	b.Outputs(prev)
	return orig, mustBytes(t, b)
}
