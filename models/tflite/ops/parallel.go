package ops

import (
	"sync"
	"sync/atomic"
)

// Large int8 convolutions split their output rows between the calling
// goroutine and a small pool of helper goroutines shared by the package.
// Hand-off is by value over a channel (no allocation); when every helper is
// busy the caller simply does all the work itself, so concurrent
// interpreters never wait on each other.

// parallelMinMACs is the work (multiply-accumulates) below which a
// convolution runs on the calling goroutine only.
var parallelMinMACs = 150_000

// parallelMinMACsSIMD is parallelMinMACs for the SIMD kernels, which do
// the same work about ten times faster (measured: on person_detect, one
// helper made every split layer slower on amd64 at 150k).
var parallelMinMACsSIMD = 2_000_000

var (
	workersOnce sync.Once
	workCh      chan task
	maxWorkers  atomic.Int32       // helpers to use; set by SetWorkers
	doneFree    chan chan struct{} // free list of completion channels
)

// SetWorkers sets how many helper goroutines (at most 3) large int8
// convolutions may use in addition to the caller. The default is 0: every
// kernel runs on the calling goroutine. On a device with idle cores,
// SetWorkers(runtime.GOMAXPROCS(0)-1) splits the big CONV_2D and
// DEPTHWISE_CONV_2D layers by output rows (results are identical; on a
// loaded machine the hand-off can cost more than it saves, so measure).
func SetWorkers(n int) {
	n = max(0, min(n, 3))
	startWorkers()
	maxWorkers.Store(int32(n))
}

func startWorkers() {
	workersOnce.Do(func() {
		workCh = make(chan task, 8)
		doneFree = make(chan chan struct{}, 16)
		for i := 0; i < cap(doneFree); i++ {
			doneFree <- make(chan struct{}, 1)
		}
		for i := 0; i < 3; i++ {
			go worker()
		}
	})
}

// task is one slice of a convolution: either GEMM rows [r0, r1) or
// depthwise output rows [r0, r1).
type task struct {
	kind   int // taskGemm or taskDepthwise
	p      *ConvParams
	a      []int8
	k, n   int
	pk     []int64
	sg     *simdGemm
	folded []int32
	qs     []chanQ
	off    int32
	lo, hi int32
	out    []int8
	filter []int8
	r0, r1 int
	b      int
	done   chan struct{}
}

const (
	taskGemm = iota
	taskDepthwise
)

// depthwiseParallelMaxC bounds the channels of a depthwise convolution
// that helpers take on (their accumulator lives on their stack).
const depthwiseParallelMaxC = 1024

func worker() {
	var acc [depthwiseParallelMaxC]int32
	for t := range workCh {
		t.run(acc[:])
		t.done <- struct{}{}
	}
}

func (t *task) run(acc []int32) {
	switch t.kind {
	case taskGemm:
		if t.sg != nil {
			t.sg.run(t.a[t.r0*t.k:t.r1*t.k], t.r1-t.r0, t.off, t.lo, t.hi, t.out[t.r0*t.n:t.r1*t.n])
			return
		}
		gemmPacked(t.a[t.r0*t.k:t.r1*t.k], t.r1-t.r0, t.k, t.pk, t.n, t.folded, t.qs, t.off, t.lo, t.hi, t.out[t.r0*t.n:t.r1*t.n])
	case taskDepthwise:
		depthwiseRows(t.p, t.a, t.filter, t.out, acc[:t.p.OutC], t.b, t.r0, t.r1)
	}
}

// runSplit runs t over [0, rows) with the rows divided between the caller and
// the helpers that are free; align keeps split points on multiples (GEMM
// row pairs). It returns when all parts are done.
func runSplit(t task, rows, macs, align int, acc []int32) {
	w := int(maxWorkers.Load()) // nonzero only after SetWorkers started the helpers
	minMACs := parallelMinMACs
	if t.sg != nil || (t.kind == taskDepthwise && t.p.sdw != nil) {
		minMACs = parallelMinMACsSIMD
	}
	if w == 0 || macs < minMACs || rows < 2*align {
		t.r0, t.r1 = 0, rows
		t.run(acc)
		return
	}
	parts := min(w+1, rows/align)
	step := (rows/parts + align - 1) / align * align
	var done chan struct{}
	select {
	case done = <-doneFree:
	default:
		t.r0, t.r1 = 0, rows
		t.run(acc)
		return
	}
	sent := 0
	r := step
send:
	for i := 1; i < parts && r < rows; i++ {
		wt := t
		wt.r0, wt.r1, wt.done = r, min(r+step, rows), done
		select {
		case workCh <- wt:
			sent++
			r = wt.r1
		default:
			break send // helpers busy: do the rest here
		}
	}
	t.r0, t.r1 = 0, step
	t.run(acc)
	if r < rows {
		t.r0, t.r1 = r, rows
		t.run(acc)
	}
	for ; sent > 0; sent-- {
		<-done
	}
	doneFree <- done
}
