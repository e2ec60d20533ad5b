// Package tflite is a pure-Go TensorFlow Lite runtime: it loads .tflite
// flatbuffers, verifies them, plans their memory and runs them with kernels
// that reproduce TensorFlow Lite Micro's reference arithmetic (bit-exact for
// int8 and int16 models).
//
// # Use
//
//	m, err := tflite.LoadFile("model.tflite") // verify + prepare, once
//	ip, err := m.NewInterpreter()             // one per goroutine
//	copy(ip.Input(0).Int8s(), features)
//	err = ip.Invoke()                         // allocates nothing
//	scores := ip.Output(0).Int8s()
//
// A Model is immutable and shared; an Interpreter owns one arena holding
// every non-constant tensor and is not safe for concurrent use. Constant
// tensors are read in place from the Model's private copy of the file.
// Variable tensors (recurrent state) keep their values between Invoke calls
// and start at zero; Interpreter.Reset zeroes them again.
//
// # Verification
//
// Load checks every flatbuffer offset, vtable and vector length against the
// file (package schema), every tensor, buffer and opcode index, every
// shape (non-negative, no overflow, at most 1 GiB per tensor), that constant
// buffers have exactly shape x dtype bytes, that quantization vectors are
// consistent with the quantized dimension, and then prepares each operator,
// which checks its tensors' count, types and shapes. Errors wrap
// ErrInvalidModel (malformed file) or ErrUnsupported (valid, but uses
// something the runtime lacks, e.g. an operator) and say where:
//
//	tflite: subgraph 0 tensor 12 "conv1/bias": buffer 7 has 40 bytes, shape [16] int32 needs 64
//	tflite: operator 3 uses CUMSUM (builtin 128), which this runtime does not implement
//
// Only subgraph 0 is run; the others are verified and ignored.
//
// # How a kernel is wired
//
// The arithmetic lives in package ops as pure functions over slices (see
// its doc). This package adds, per builtin operator, a prepare function
// registered by builtin code (registry.go, kernels_*.go):
//
//	func init() { register(OpFullyConnected, prepareFC) }
//
//	func prepareFC(c *opCtx) (*prepared, error) {
//		// 1. check the operator's inputs and outputs: c.numIO, c.mustIn(k),
//		//    c.in(k) (nil if the optional input is -1), c.out(k),
//		//    c.wantType, c.wantRank, c.wantQuant (per-tensor scale, zp).
//		// 2. read the builtin options: t, err := c.options(schema.OptFullyConnected)
//		//    then t.Int8(fieldID, default), t.Int32, t.Float32, t.Bool...
//		//    (field ids are those of schema.fbs; every read is bounds-checked).
//		// 3. compute the params once, at Load: p, err := ops.PrepareFullyConnected(...)
//		//    (errors from ops are wrapped with c.errorf("%v", err)).
//		// 4. return the scratch sizes (bytes) and a bind function:
//		return &prepared{scratch: []int{nBytes}, bind: func(b *binding) (evalFunc, error) {
//			// runs once per Interpreter: take typed views over the arena
//			// (b.opt(k) is nil for an omitted or absent optional input;
//			// b.scratch[k] is the k-th scratch buffer)
//			x, w, y := asInt8s(b.in[0].data), asInt8s(b.in[1].data), asInt8s(b.out[0].data)
//			var bias []int32
//			if t := b.opt(2); t != nil {
//				bias = asInt32s(t.data)
//			}
//			return func() error { ops.FullyConnectedInt8(p, x, w, bias, y); return nil }, nil
//		}}, nil
//	}
//
// Params are computed once per Model and shared by its interpreters, so
// eval functions must treat them as read-only. The typed slices handed to a
// kernel always have exactly the element count of the tensor's shape (the
// loader checks constant buffers, the planner sizes arena slices), and the
// shapes were passed to the ops Prepare function, which validates them, so
// an eval function never sees a slice shorter than its params imply.
// Scratch buffers are arena memory live only during that operator, aligned
// to 16 bytes, not zeroed between calls.
package tflite
