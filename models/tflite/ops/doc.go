// Package ops holds the arithmetic of the TFLite kernels as pure functions:
// float32 kernels and the quantized (int8, and int16 "16x8") kernels,
// bit-exact with TensorFlow Lite Micro's reference kernels.
//
// # Contract with the interpreter
//
// Every op is split in two, as in TFLM:
//
//   - A Prepare function (PrepareConv2D, PrepareBinary, ...) takes plain
//     values read from the model — shapes as []int (the tensor's dims,
//     outermost first, exactly as stored in the model), scales as the model's
//     float32 values, zero points as int, the operator's options as plain
//     ints/enums — and returns a params
//     struct (or an error saying what is unsupported or inconsistent). It may
//     allocate (per-channel multiplier tables, lookup tables, folded biases).
//     Call it once at load time; the params are read-only afterwards and may be
//     shared by many interpreters.
//
//   - Eval functions take the params and typed slices over the arena
//     (in, filter, bias, out, scratch...). Shapes are NOT passed again: they
//     were captured by Prepare. Eval functions allocate nothing, take no
//     interfaces, and panic only if given slices shorter than the shapes
//     declared at prepare time (the interpreter guarantees the sizes).
//
// Shape is []int: the dims of a tensor, outermost first. 4-D NHWC for images
// (N, H, W, C); conv filters are OHWI [out_ch, kh, kw, in_ch]; depthwise
// filters are [1, kh, kw, in_ch*depth_multiplier]; fully-connected weights
// are [out_units, in_units].
//
// Scratch: functions that need scratch memory say so; the params struct has a
// ScratchInt32 (or similar) field giving the number of elements required, so
// the planner can reserve it in the arena.
//
// Fast paths: the int8 CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED kernels
// run the reference loop unless their Precompute method was called once with
// the constant filter and bias; it folds the input zero point into the bias
// and packs the weights (three int8 weights per int64, see gemm.go) for the
// GEMM / depthwise fast paths, which are bit-exact with the reference (int32
// sums are exact in any order; the requantization is TFLite's, unrolled).
// After Precompute, the filter and bias passed to the eval functions must be
// the same constant data (the fast paths use the packed copies).
//
// SIMD: on amd64 (AVX2, and AVX-512 with VNNI where x/sys/cpu reports
// them) and arm64 (NEON, and the SDOT dot product where x/sys/cpu reports
// it; Cortex-A53/A72 lack it), Precompute also packs the weights for
// assembly kernels (simd*.go, simd_*.s): the int8 GEMM behind CONV_2D,
// FULLY_CONNECTED and one-input-channel DEPTHWISE_CONV_2D, and the 3x3
// depth-multiplier-1 DEPTHWISE_CONV_2D, each with the requantization fused
// in. Their results are identical to the Go kernels' (exact int32 sums;
// TFLite's requantization computed lane-wise with the same rounding and
// saturation), which stay as the fallback (other architectures, the purego
// build tag, older CPUs, shapes the kernels do not take) and as the test
// oracle (simd_test.go). person_detect on one core of an AMD EPYC (Zen 5
// class, AVX-512 VNNI): about 0.16 ms per Invoke, against about 2.1 ms with
// the Go kernels (-tags purego). The default stays SetWorkers(0): with SIMD
// no person_detect layer is worth a hand-off (parallelMinMACsSIMD).
//
// Concurrency: params are read-only after Prepare/Precompute and safe to
// share. SetWorkers(n) lets large int8 convolutions split their rows over n
// helper goroutines (default 0: everything runs on the caller).
//
// Activation: fused activations are given as the Activation enum (the TFLite
// ActivationFunctionType values: ActNone=0, ActRelu=1, ActReluN1To1=2,
// ActRelu6=3, ActTanh=4, ActSignBit=5). For quantized kernels Prepare
// computes the clamping range from the output's scale and zero point as
// TFLM's CalculateActivationRangeQuantized does.
//
// Padding: the Padding type has the schema's values (PaddingSame=0,
// PaddingValid=1), so the option byte converts directly.
//
// # Which function serves which op
//
// Scales are passed as the model's float32 values; Prepare widens them
// exactly as TFLM does (double for conv/FC/add/mul, float32 for sub and
// leaky_relu). "16" below means 16x8 quantization (int16 activations, int8
// weights, int64 bias, zero points 0).
//
//	FULLY_CONNECTED  PrepareFullyConnected (+ FCParams.PrecomputeInt8 with the
//	                 constant filter/bias for the fast path)
//	                 float: FullyConnectedFloat; int8: FullyConnectedInt8;
//	                 16: FullyConnectedInt16 (int64 bias)
//	CONV_2D          PrepareConv2D (+ ConvParams.PrecomputeInt8 for int8)
//	                 float: Conv2DFloat; int8: Conv2DInt8 (scratch int8 of
//	                 ConvParams.ScratchInt8 elements); 16: Conv2DInt16
//	DEPTHWISE_CONV_2D PrepareDepthwiseConv2D (+ PrecomputeDepthwiseInt8)
//	                 float: DepthwiseConv2DFloat; int8: DepthwiseConv2DInt8
//	                 (scratch int32 of ScratchInt32); 16: DepthwiseConv2DInt16
//	TRANSPOSE_CONV   PrepareTransposeConv; float: TransposeConvFloat; int8:
//	                 TransposeConvInt8 (scratch int32); 16: TransposeConvInt16
//	                 (scratch int64 of ScratchInt64 elements)
//	AVERAGE_POOL_2D  PreparePool2D; AveragePoolFloat / AveragePoolInt8 /
//	                 AveragePoolInt16 (scratch int32 of C elements)
//	MAX_POOL_2D      PreparePool2D; MaxPoolFloat / MaxPoolInt8 / MaxPoolInt16
//	SOFTMAX          PrepareSoftmax; SoftmaxFloat, SoftmaxInt8 (int8 out),
//	                 SoftmaxInt8Int16 (int16 out), SoftmaxInt16
//	ADD, SUB, MUL    PrepareBinary(OpAdd/OpSub/OpMul, ...); BinaryFloat,
//	                 BinaryInt8, BinaryInt16, BinaryInt32 (broadcast to 6-D)
//	QUANTIZE         PrepareQuantize; float in: QuantizeFloatToInt8/Int16;
//	                 integer in: Requantize[I, O] (int8/int16/int32 -> any)
//	DEQUANTIZE       Dequantize[I](scale, zeroPoint, in, out)
//	RESHAPE, SQUEEZE, EXPAND_DIMS  Copy[T] (or alias the buffers)
//	PAD, PADV2       PreparePad(in, paddings, out); Pad[T](p, in, out, value)
//	                 with value = constant_values[0] if given, else the
//	                 output zero point (0 for float and int16)
//	STRIDED_SLICE    PrepareStridedSlice(in, StridedSliceOptions{...}, out);
//	                 StridedSlice[T] (any element type)
//	CONCATENATION    PrepareConcat(inShapes, axis, out); Concat[T] (TFLM
//	                 requires equal quantization of inputs and output)
//	MEAN             PrepareMean(in, axes, out, scales...); MeanFloat,
//	                 MeanInt8 / MeanInt16 (scratch int32 of NOut elements)
//	RELU, RELU_N1_TO_1 PrepareRelu(lo, hi, bits, ...); ReluFloat, ReluInt8,
//	                 ReluInt16
//	RELU6            PrepareRelu6(bits, inScale, inZeroPoint); ReluFloat,
//	                 Relu6Int8, Relu6Int16
//	LEAKY_RELU       PrepareLeakyRelu; LeakyReluFloat/Int8/Int16
//	LOGISTIC         PrepareLogistic(bits, ...); LogisticFloat/Int8/Int16
//	TANH             PrepareTanh(bits, ...); TanhFloat/Int8/Int16
//
// Bit-exactness against TFLM is checked in this package's tests on the
// corpus wherever the parameters can be read without the runtime:
// simple_add, seanet_{add,sub,quantize,leaky_relu,pad,strided_slice,conv,
// transpose_conv}, and (through a test-only chain of these kernels)
// hello_world_int8, micro_speech and person_detect, plus hello_world_float
// within 1e-5.
package ops
