package tflwrite_test

import (
	"fmt"

	"github.com/outpost-iot/outpost/models/tflite"
	tflwrite "github.com/outpost-iot/outpost/models/tflite/write"
)

// A one-layer dense model y = relu(W x + b), written and run.
func ExampleBuilder() {
	b := tflwrite.New("dense example")
	x := b.Input("x", tflwrite.Float32, []int{1, 3}, nil)
	w := b.ConstFloat32("w", []int{2, 3}, []float32{1, 0, -1, 0.5, 0.5, 0.5})
	bias := b.ConstFloat32("b", []int{2}, []float32{0, -1})
	y := b.Tensor("y", tflwrite.Float32, []int{1, 2}, nil)
	b.Op(tflwrite.OpFullyConnected, []tflwrite.TensorID{x, w, bias}, []tflwrite.TensorID{y},
		&tflwrite.FullyConnectedOptions{Activation: tflwrite.ActRelu})
	b.Outputs(y)
	raw, err := b.Bytes()
	if err != nil {
		panic(err)
	}

	m, err := tflite.Load(raw)
	if err != nil {
		panic(err)
	}
	ip, err := m.NewInterpreter()
	if err != nil {
		panic(err)
	}
	copy(ip.Input(0).Float32s(), []float32{3, 2, 1})
	if err := ip.Invoke(); err != nil {
		panic(err)
	}
	fmt.Println(ip.Output(0).Float32s(), m.Operators()[0].Name, m.Operators()[0].Version, b.MinRuntimeVersion())
	// Output: [2 2] FULLY_CONNECTED 1 1.5.0
}
