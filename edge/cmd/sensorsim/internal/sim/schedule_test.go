package sim

import (
	"reflect"
	"testing"
	"time"
)

func rowsAt(t0 time.Time, mins ...int) []Row {
	rows := make([]Row, len(mins))
	for i, m := range mins {
		rows[i] = Row{T: t0.Add(time.Duration(m) * time.Minute), Values: []float64{float64(i)}}
	}
	return rows
}

// Pacing is computed, not timed: repeated timestamps add nothing, a backward
// step adds nothing, and the next step counts from the row above it.
func TestSchedule(t *testing.T) {
	t0 := time.Date(2014, 1, 7, 2, 0, 0, 0, time.UTC)
	rows := rowsAt(t0, 0, 5, 5, 3, 8, 18)
	wantData := []time.Duration{0, 5 * time.Minute, 5 * time.Minute, 5 * time.Minute, 10 * time.Minute, 20 * time.Minute}
	if got := DataOffsets(rows); !reflect.DeepEqual(got, wantData) {
		t.Fatalf("DataOffsets = %v, want %v", got, wantData)
	}
	// 1800 data seconds per wall second: 5 min of data is 1/6 s.
	got := Schedule(rows, 1800)
	for i, d := range wantData {
		if want := d / 1800; got[i] != want {
			t.Fatalf("Schedule(1800)[%d] = %v, want %v", i, got[i], want)
		}
	}
	if got := Schedule(rows, 60); got[5] != 20*time.Second {
		t.Fatalf("20 min at 60x = %v, want 20s", got[5])
	}
	for i, d := range Schedule(rows, 0) {
		if d != 0 {
			t.Fatalf("speedup 0: offset %d = %v, want 0", i, d)
		}
	}
	if s := TypicalStep(rows); s != 5*time.Minute {
		t.Fatalf("TypicalStep = %v, want 5m", s)
	}
	if s := TypicalStep(rowsAt(t0, 0, 0)); s != time.Second {
		t.Fatalf("TypicalStep without steps = %v, want 1s", s)
	}
}
