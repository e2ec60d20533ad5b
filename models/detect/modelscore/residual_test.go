package modelscore_test

import (
	"math"
	"testing"

	"github.com/outpost-iot/outpost/models/detect/modelscore"
)

// TestResidual: NewResidual's score is the |residual| itself: New's score
// times the scale it was divided by (the scale before the reading,
// floored), with the same warm-up; and its state restores into a residual
// scorer.
func TestResidual(t *testing.T) {
	m, model := loadEdge(t)
	r, err := modelscore.NewRunner(m, model)
	if err != nil {
		t.Fatal(err)
	}
	plain, res := modelscore.New(r), modelscore.NewResidual(r)
	vs := smooth(600, 3)
	vs[400] += 5
	scored := 0
	for i, v := range vs {
		scale, _ := plain.Scale()
		s1, ok1 := plain.Step(v)
		s2, ok2 := res.Step(v)
		if ok1 != ok2 {
			t.Fatalf("reading %d: warm %v and %v", i, ok1, ok2)
		}
		if !ok1 {
			continue
		}
		scored++
		if s2 < 0 || math.Abs(s1*scale-s2) > 1e-9*(1+s2) {
			// The floor (std_floor·|mean| = 2e-5 here) is far below the
			// scale of this stream, so score·scale is the residual.
			t.Fatalf("reading %d: score %v × scale %v = %v, residual score %v", i, s1, scale, s1*scale, s2)
		}
	}
	if scored < 400 {
		t.Fatalf("%d readings scored", scored)
	}
	b, err := res.AppendState(nil)
	if err != nil {
		t.Fatal(err)
	}
	c, _, err := modelscore.NewResidual(r).RestoreState(b, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range smooth(50, 4) {
		s1, _ := res.Step(v)
		s2, _ := c.Step(v)
		if s1 != s2 {
			t.Fatalf("restored residual scorer scores %v, original %v", s2, s1)
		}
	}
}
