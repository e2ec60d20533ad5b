package train

import (
	"fmt"
	"math"

	tflwrite "github.com/outpost-iot/outpost/models/tflite/write"
)

// ExportFloat writes m as a float32 .tflite model: input "window" [1,
// Sizes[0]], one FULLY_CONNECTED per layer (ReLU fused but on the last),
// output "output" [1, Sizes[last]].
func ExportFloat(m *MLP, name string) ([]byte, error) {
	b := tflwrite.New(name)
	x := b.Input("window", tflwrite.Float32, []int{1, m.Sizes[0]}, nil)
	for l := range m.W {
		in, n := m.Sizes[l], m.Sizes[l+1]
		w := b.ConstFloat32(fmt.Sprintf("dense%d/weights", l), []int{n, in}, f32(m.W[l]))
		bias := b.ConstFloat32(fmt.Sprintf("dense%d/bias", l), []int{n}, f32(m.B[l]))
		tname, act := fmt.Sprintf("dense%d", l), tflwrite.ActRelu
		if l+1 == len(m.W) {
			tname, act = "output", tflwrite.ActNone
		}
		y := b.Tensor(tname, tflwrite.Float32, []int{1, n}, nil)
		b.Op(tflwrite.OpFullyConnected, []tflwrite.TensorID{x, w, bias}, []tflwrite.TensorID{y},
			&tflwrite.FullyConnectedOptions{Activation: act})
		x = y
	}
	b.Outputs(x)
	return b.Bytes()
}

// Ranges are the calibrated float ranges of a network's activations:
// Lo[0], Hi[0] of its input, Lo[l+1], Hi[l+1] of layer l's output.
type Ranges struct {
	Lo, Hi []float64
}

// Calibrate runs m over xs and returns the minimum and maximum of its input
// and of every layer's output, as TFLite's converter records them for
// post-training quantisation.
func Calibrate(m *MLP, xs [][]float64) Ranges {
	r := Ranges{Lo: make([]float64, len(m.Sizes)), Hi: make([]float64, len(m.Sizes))}
	for _, x := range xs {
		_, acts := m.Forward(x)
		for l, a := range acts {
			for _, v := range a {
				r.Lo[l] = math.Min(r.Lo[l], v)
				r.Hi[l] = math.Max(r.Hi[l], v)
			}
		}
	}
	return r
}

// Quantized is an int8 export: the .tflite bytes and the quantisation of
// each tensor, for tests and reports.
type Quantized struct {
	Model []byte
	// Acts[l] is the quantisation of acts[l] (input, then each layer's
	// output).
	Acts []*tflwrite.Quant
	// Weights[l] and QWeights[l] are layer l's weight quantisation and
	// int8 values; Bias[l] and QBias[l] its bias's.
	Weights  []*tflwrite.Quant
	QWeights [][]int8
	Bias     []*tflwrite.Quant
	QBias    [][]int32
}

// ExportInt8 quantises m post-training and writes it: float32 input
// "window" [1, Sizes[0]], QUANTIZE to int8 with the input's calibrated
// range, one int8 FULLY_CONNECTED per layer (weights symmetric per output
// channel, int32 biases with scale input_scale·weight_scale, output
// asymmetric per tensor from its calibrated range), DEQUANTIZE to the
// float32 output "output" [1, Sizes[last]].
func ExportInt8(m *MLP, name string, r Ranges) (*Quantized, error) {
	q := &Quantized{}
	for l := range m.Sizes {
		q.Acts = append(q.Acts, tflwrite.Int8Params(float32(r.Lo[l]), float32(r.Hi[l])))
	}
	b := tflwrite.New(name)
	xf := b.Input("window", tflwrite.Float32, []int{1, m.Sizes[0]}, nil)
	x := b.Tensor("window_int8", tflwrite.Int8, []int{1, m.Sizes[0]}, q.Acts[0])
	b.Op(tflwrite.OpQuantize, []tflwrite.TensorID{xf}, []tflwrite.TensorID{x}, nil)
	for l := range m.W {
		in, n := m.Sizes[l], m.Sizes[l+1]
		qw, wq, err := tflwrite.QuantizeWeightsPerChannel(f32(m.W[l]), []int{n, in}, 0)
		if err != nil {
			return nil, err
		}
		qb, bq, err := tflwrite.QuantizeBias(f32(m.B[l]), q.Acts[l].Scales[0], wq)
		if err != nil {
			return nil, err
		}
		q.Weights, q.QWeights, q.Bias, q.QBias = append(q.Weights, wq), append(q.QWeights, qw), append(q.Bias, bq), append(q.QBias, qb)
		w := b.ConstInt8(fmt.Sprintf("dense%d/weights", l), []int{n, in}, wq, qw)
		bias := b.ConstInt32(fmt.Sprintf("dense%d/bias", l), []int{n}, bq, qb)
		tname, act := fmt.Sprintf("dense%d", l), tflwrite.ActRelu
		if l+1 == len(m.W) {
			tname, act = "output_int8", tflwrite.ActNone
		}
		y := b.Tensor(tname, tflwrite.Int8, []int{1, n}, q.Acts[l+1])
		b.Op(tflwrite.OpFullyConnected, []tflwrite.TensorID{x, w, bias}, []tflwrite.TensorID{y},
			&tflwrite.FullyConnectedOptions{Activation: act})
		x = y
	}
	out := b.Tensor("output", tflwrite.Float32, []int{1, m.Sizes[len(m.Sizes)-1]}, nil)
	b.Op(tflwrite.OpDequantize, []tflwrite.TensorID{x}, []tflwrite.TensorID{out}, nil)
	b.Outputs(out)
	raw, err := b.Bytes()
	if err != nil {
		return nil, err
	}
	q.Model = raw
	return q, nil
}

func f32(v []float64) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x)
	}
	return out
}
