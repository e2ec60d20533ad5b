package nab

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// The hand-made corpus in ../testdata/nab/corpus: demo/steps.csv (40 rows
// every 5 minutes from 2020-01-01 00:00, row 11 repeating row 10's
// timestamp, row 21 stepping back to 01:10, values 10 at rows 30 and 31, one
// window 02:15..02:45), demo/multi.csv (two value columns, no windows), and
// other/unlabelled.csv (not in the labels). The labels also name a
// demo/missing.csv that has no data file.
func TestLoadCorpusHandMade(t *testing.T) {
	c, err := LoadCorpus("../testdata/nab/corpus")
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, s := range c.Series {
		keys = append(keys, s.Key)
	}
	if want := []string{"demo/multi.csv", "demo/steps.csv", "other/unlabelled.csv"}; !reflect.DeepEqual(keys, want) {
		t.Fatalf("keys %v, want %v", keys, want)
	}
	if !reflect.DeepEqual(c.Unlabelled, []string{"other/unlabelled.csv"}) {
		t.Errorf("unlabelled %v", c.Unlabelled)
	}
	multi, steps := c.Series[0], c.Series[1]
	if !reflect.DeepEqual(multi.Columns, []string{"temp", "humidity"}) || multi.Len() != 30 || !multi.Labelled || len(multi.Windows) != 0 {
		t.Errorf("multi: columns %v rows %d labelled %v windows %v", multi.Columns, multi.Len(), multi.Labelled, multi.Windows)
	}
	if got := multi.Values[3]; !reflect.DeepEqual(got, []float64{21.5, 40}) {
		t.Errorf("multi row 3 = %v", got)
	}
	if steps.Len() != 40 || steps.Category() != "demo" {
		t.Fatalf("steps: %d rows, category %q", steps.Len(), steps.Category())
	}
	// Rows stay in file order: the repeat and the step back are kept.
	if !steps.Times[11].Equal(steps.Times[10]) || !steps.Times[21].Before(steps.Times[20]) {
		t.Errorf("file order lost: rows 10,11 = %v,%v; rows 20,21 = %v,%v", steps.Times[10], steps.Times[11], steps.Times[20], steps.Times[21])
	}
	if steps.Values[30][0] != 10 || steps.Values[29][0] != 1 {
		t.Errorf("values at 29, 30: %v %v", steps.Values[29], steps.Values[30])
	}
	if want := []Window{{Start: 27, End: 33}}; !reflect.DeepEqual(steps.Windows, want) {
		t.Errorf("windows %v, want %v", steps.Windows, want)
	}
	if c.Windows() != 1 || c.Rows() != 72 {
		t.Errorf("corpus windows %d rows %d", c.Windows(), c.Rows())
	}
}

func TestLoadCorpusErrors(t *testing.T) {
	if _, err := LoadCorpus(t.TempDir()); err == nil {
		t.Error("empty folder loaded")
	}
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "data", "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "data", "x", "a.csv"), []byte("timestamp,value\n2020-01-01 00:00:00,1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCorpus(dir); err == nil {
		t.Error("corpus without labels loaded")
	}
	if _, err := LoadCorpus(filepath.Join(dir, "nope")); err == nil || errors.Is(err, ErrNoData) {
		t.Errorf("missing folder: %v", err)
	}
	if _, err := readSeries(strings.NewReader("time,value\n2020-01-01 00:00:00,1\n")); err == nil {
		t.Error("no timestamp column accepted")
	}
	if _, err := readSeries(strings.NewReader("timestamp\n2020-01-01 00:00:00\n")); err == nil {
		t.Error("no value column accepted")
	}
	if _, err := readSeries(strings.NewReader("timestamp,value\n2020-01-01 00:00:00,x\n")); err == nil {
		t.Error("bad value accepted")
	}
	if _, err := readSeries(strings.NewReader("timestamp,value\n2020-01-01T00:00:00,1\n")); err == nil {
		t.Error("bad timestamp accepted")
	}
}

func TestRowWindows(t *testing.T) {
	base := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(m ...int) []time.Time {
		var ts []time.Time
		for _, x := range m {
			ts = append(ts, base.Add(time.Duration(x)*time.Minute))
		}
		return ts
	}
	tw := func(a, b int) TimeWindow {
		return TimeWindow{Start: base.Add(time.Duration(a) * time.Minute), End: base.Add(time.Duration(b) * time.Minute)}
	}
	// A step back inside a window keeps the window going in file order.
	times := at(0, 5, 10, 15, 20, 12, 25, 30, 35)
	got, err := RowWindows(times, []TimeWindow{tw(25, 30), tw(10, 20)})
	if err != nil {
		t.Fatal(err)
	}
	if want := []Window{{Start: 2, End: 5}, {Start: 6, End: 7}}; !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	// A window between rows holds none and is dropped; one past the end too.
	if got, _ := RowWindows(times, []TimeWindow{tw(1, 2), tw(40, 50)}); len(got) != 0 {
		t.Errorf("empty windows kept: %v", got)
	}
	if _, err := RowWindows(times, []TimeWindow{tw(5, 15), tw(10, 20)}); err == nil {
		t.Error("overlapping windows accepted")
	}
	if _, err := RowWindows(times, []TimeWindow{tw(20, 10)}); err == nil {
		t.Error("reversed window accepted")
	}
}
