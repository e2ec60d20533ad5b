package tflite

import (
	"fmt"
	"sort"
)

// arenaAlign is the alignment of every tensor and scratch buffer in the
// arena (enough for any element type, and for SIMD-friendly loads).
const arenaAlign = 16

// maxArenaBytes bounds an interpreter's arena.
const maxArenaBytes = 1 << 30

// plan is the memory layout of one model's non-constant tensors and
// scratch buffers inside an interpreter's arena. It is computed once per
// Model and shared by its interpreters.
type plan struct {
	size int
	// tensorOff[i] is tensor i's offset in the arena, or -1 if the tensor
	// needs no arena memory (constant, or unused).
	tensorOff []int
	// scratchOff[op][k] is the offset of scratch buffer k of operator op.
	scratchOff [][]int
}

// planItem is one buffer to place: live from op first to op last
// (inclusive) and size bytes long.
type planItem struct {
	size        int
	first, last int
	off         int
	tensor      int // tensor index, or -1 for scratch
	op, k       int // scratch owner
}

func alignUp(n int) int { return (n + arenaAlign - 1) &^ (arenaAlign - 1) }

// makePlan computes tensor lifetimes (the first and last operator using
// each non-constant tensor; model inputs live for the whole run, outputs
// to the end, variable tensors for the whole run) and assigns arena offsets
// greedily, largest buffer first, each at the lowest offset that does not
// overlap a placed buffer whose lifetime intersects its own: buffers whose
// lifetimes are disjoint share memory.
func makePlan(m *Model) (*plan, error) {
	nOps := len(m.operators)
	first := make([]int, len(m.tensors))
	last := make([]int, len(m.tensors))
	for i := range first {
		first[i], last[i] = -2, -2
	}
	use := func(t, op int) {
		if t < 0 || m.tensors[t].Constant {
			return
		}
		if first[t] == -2 || op < first[t] {
			first[t] = op
		}
		if op > last[t] {
			last[t] = op
		}
	}
	// Model inputs stay live for the whole run, so an input written once
	// can be invoked on repeatedly.
	for _, t := range m.inputs {
		use(t, -1)
		use(t, nOps)
	}
	for i := range m.operators {
		o := &m.operators[i]
		for _, t := range o.Inputs {
			use(t, i)
		}
		for _, t := range o.Outputs {
			use(t, i)
		}
	}
	for _, t := range m.outputs {
		use(t, nOps)
	}
	for i := range m.tensors {
		if m.tensors[i].Variable && first[i] != -2 {
			first[i], last[i] = -1, nOps
		}
	}
	var items []planItem
	for i := range m.tensors {
		if first[i] == -2 {
			continue
		}
		items = append(items, planItem{size: alignUp(m.tensors[i].NumBytes()), first: first[i], last: last[i], tensor: i})
	}
	for op, p := range m.nodes {
		for k, sz := range p.scratch {
			items = append(items, planItem{size: alignUp(sz), first: op, last: op, tensor: -1, op: op, k: k})
		}
	}
	// Largest first; ties by earliest start, then by tensor order, so the
	// plan is deterministic.
	sort.SliceStable(items, func(a, b int) bool {
		if items[a].size != items[b].size {
			return items[a].size > items[b].size
		}
		return items[a].first < items[b].first
	})
	var placed []*planItem
	size := 0
	for i := range items {
		it := &items[i]
		// Collect the intervals of placed, time-overlapping buffers,
		// sorted by offset, and take the first gap that fits.
		var busy []*planItem
		for _, p := range placed {
			if p.first <= it.last && it.first <= p.last {
				busy = append(busy, p)
			}
		}
		sort.Slice(busy, func(a, b int) bool { return busy[a].off < busy[b].off })
		off := 0
		for _, p := range busy {
			if off+it.size <= p.off {
				break
			}
			if end := p.off + p.size; end > off {
				off = end
			}
		}
		it.off = off
		if int64(off)+int64(it.size) > maxArenaBytes {
			what := "scratch"
			if it.tensor >= 0 {
				what = fmt.Sprintf("tensor %d %q", it.tensor, m.tensors[it.tensor].Name)
			}
			return nil, fmt.Errorf("tflite: %s does not fit: the model needs an arena larger than %d bytes: %w", what, maxArenaBytes, ErrUnsupported)
		}
		if off+it.size > size {
			size = off + it.size
		}
		placed = append(placed, it)
	}
	pl := &plan{size: size, tensorOff: make([]int, len(m.tensors)), scratchOff: make([][]int, nOps)}
	for i := range pl.tensorOff {
		pl.tensorOff[i] = -1
	}
	for op, p := range m.nodes {
		pl.scratchOff[op] = make([]int, len(p.scratch))
	}
	for _, it := range items {
		if it.tensor >= 0 {
			pl.tensorOff[it.tensor] = it.off
		} else {
			pl.scratchOff[it.op][it.k] = it.off
		}
	}
	return pl, nil
}
