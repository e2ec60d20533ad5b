package modelstore

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"

	"github.com/outpost-iot/outpost/models/tflite"
	"github.com/outpost-iot/outpost/shared/modelpkg"
)

// ErrRefused is wrapped by every error Check returns: the file is not a
// model this store accepts for its role.
var ErrRefused = errors.New("model refused")

// MaxArenaBytes bounds the working memory of a model Check runs (a file
// can declare huge tensors); larger models are refused.
const MaxArenaBytes = 256 << 20

// Report is what Check learnt about a model.
type Report struct {
	// Inputs and Outputs are "type[shape]" per tensor, e.g. "int8[1 1]".
	Inputs  []string
	Outputs []string
	// Operators are the operator names with counts, e.g. "FULLY_CONNECTED×3",
	// in first-use order.
	Operators []string
	// ArenaBytes is the interpreter's working memory.
	ArenaBytes int
}

// Check validates model for role (modelpkg.RoleEdge or RoleCloud) with the
// runtime the edge uses:
//
//  1. tflite.Load verifies the flatbuffer and prepares every operator
//     (malformed files and unsupported operators fail here);
//  2. an interpreter (at most MaxArenaBytes of working memory) is made and invoked twice, with all inputs zero and
//     with seeded pseudo-random inputs (float32 in [-1, 1), int8, uint8 and
//     int16 over their range; integer index types stay zero); an Invoke
//     error, or a NaN in a float32 output, refuses the model;
//  3. the role: an edge model must be integer-quantised — no constant
//     float32 tensor (weights, biases), at least one int8 tensor — though
//     it may take and give float32 with QUANTIZE/DEQUANTIZE inside; a cloud
//     model must take and give float32.
//
// Errors wrap ErrRefused and say what to do. A panic in the runtime is
// caught and reported as a refusal.
func Check(model []byte, role string) (rep Report, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: the runtime failed on this file: %v", ErrRefused, r)
		}
	}()
	m, err := tflite.Load(model)
	if err != nil {
		return rep, fmt.Errorf("%w: %w", ErrRefused, err)
	}
	ip, err := m.NewInterpreter(tflite.WithMaxArenaBytes(MaxArenaBytes))
	if err != nil {
		return rep, fmt.Errorf("%w: %w", ErrRefused, err)
	}
	rep.ArenaBytes = ip.ArenaBytes()
	for _, t := range ip.Inputs() {
		rep.Inputs = append(rep.Inputs, describe(t))
	}
	for _, t := range ip.Outputs() {
		rep.Outputs = append(rep.Outputs, describe(t))
	}
	counts := map[string]int{}
	var order []string
	for _, op := range m.Operators() {
		if counts[op.Name] == 0 {
			order = append(order, op.Name)
		}
		counts[op.Name]++
	}
	for _, name := range order {
		rep.Operators = append(rep.Operators, name+"×"+strconv.Itoa(counts[name]))
	}
	for run, fill := range []string{"zero", "seeded random"} {
		if run == 1 {
			rng := rand.New(rand.NewPCG(1, 2))
			for _, t := range ip.Inputs() {
				fillRandom(t, rng)
			}
		}
		if err := ip.Invoke(); err != nil {
			return rep, fmt.Errorf("%w: test invoke with %s inputs failed: %w", ErrRefused, fill, err)
		}
		for k, t := range ip.Outputs() {
			if t.Type() != tflite.Float32 {
				continue
			}
			for _, v := range t.Float32s() {
				if math.IsNaN(float64(v)) {
					return rep, fmt.Errorf("%w: output %d %q is NaN for %s inputs", ErrRefused, k, t.Name(), fill)
				}
			}
		}
		ip.Reset()
	}
	return rep, checkRole(m, ip, role)
}

func checkRole(m *tflite.Model, ip *tflite.Interpreter, role string) error {
	switch role {
	case modelpkg.RoleEdge:
		var int8s int
		for _, t := range m.Tensors() {
			if t.Constant && t.Type == tflite.Float32 {
				return fmt.Errorf("%w: an edge model must be integer-quantised, but constant tensor %d %q is float32 (quantise the model to int8, or push it with --role cloud)", ErrRefused, t.Index, t.Name)
			}
			if t.Type == tflite.Int8 {
				int8s++
			}
		}
		if int8s == 0 {
			return fmt.Errorf("%w: an edge model must be integer-quantised, but no tensor is int8 (quantise the model to int8, or push it with --role cloud)", ErrRefused)
		}
	case modelpkg.RoleCloud:
		for _, set := range []struct {
			what string
			ts   []*tflite.Tensor
		}{{"input", ip.Inputs()}, {"output", ip.Outputs()}} {
			for k, t := range set.ts {
				if t.Type() != tflite.Float32 {
					return fmt.Errorf("%w: a cloud model must take and give float32, but %s %d %q is %s (push it with --role edge if it is quantised for the gateway)", ErrRefused, set.what, k, t.Name(), t.Type())
				}
			}
		}
	default:
		return fmt.Errorf("%w: unknown role %q", ErrRefused, role)
	}
	return nil
}

func describe(t *tflite.Tensor) string {
	dims := make([]string, 0, len(t.Shape()))
	for _, d := range t.Shape() {
		dims = append(dims, strconv.Itoa(d))
	}
	return fmt.Sprintf("%s[%s]", t.Type(), strings.Join(dims, " "))
}

func fillRandom(t *tflite.Tensor, rng *rand.Rand) {
	switch t.Type() {
	case tflite.Float32:
		s := t.Float32s()
		for i := range s {
			s[i] = float32(rng.Float64()*2 - 1)
		}
	case tflite.Int8:
		s := t.Int8s()
		for i := range s {
			s[i] = int8(rng.IntN(256) - 128)
		}
	case tflite.Uint8:
		s := t.Uint8s()
		for i := range s {
			s[i] = uint8(rng.IntN(256))
		}
	case tflite.Int16:
		s := t.Int16s()
		for i := range s {
			s[i] = int16(rng.IntN(65536) - 32768)
		}
	}
}
