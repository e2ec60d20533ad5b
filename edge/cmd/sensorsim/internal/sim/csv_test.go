package sim

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

const nabDir = "../../../../../datasets/nab/data/realKnownCause"

// The real NAB file with a backward step keeps every row, in file order.
func TestParseCSVNAB(t *testing.T) {
	path := filepath.Join(nabDir, "machine_temperature_system_failure.csv")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Skipf("NAB data not present: %v", err)
	}
	lines := strings.Count(strings.TrimRight(string(raw), "\n"), "\n") // data lines
	s, err := LoadCSV(path, ParseOptions{Strict: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Rows) != lines || s.Skipped != 0 {
		t.Fatalf("rows = %d (skipped %d), want %d", len(s.Rows), s.Skipped, lines)
	}
	if s.Name != "machine_temperature_system_failure" || !reflect.DeepEqual(s.Columns, []string{"value"}) {
		t.Fatalf("name %q columns %q", s.Name, s.Columns)
	}
	want := time.Date(2013, 12, 2, 21, 15, 0, 0, time.UTC)
	if !s.Rows[0].T.Equal(want) || s.Rows[0].Values[0] != 73.96732207 || s.Rows[0].Line != 2 {
		t.Fatalf("first row = %+v", s.Rows[0])
	}
	// Line 10151 steps back from 02:55 to 02:00; it must stay in place.
	r := s.Rows[10151-2]
	if r.Line != 10151 || !r.T.Equal(time.Date(2014, 1, 7, 2, 0, 0, 0, time.UTC)) {
		t.Fatalf("row at line 10151 = %+v", r)
	}
	off := DataOffsets(s.Rows)
	if off[10151-2] != off[10151-3] {
		t.Fatalf("backward step advanced the schedule: %v -> %v", off[10151-3], off[10151-2])
	}
}

func TestParseCSVMultiColumn(t *testing.T) {
	in := "\ufefftimestamp, temp ,\"humidity\"\r\n" +
		"2024-01-01 00:00:00,21.5,40\r\n" +
		"\r\n" +
		"2024-01-01T00:01:00Z,-1e3,41.25\r\n"
	s, err := ParseCSV(strings.NewReader(in), "dir/room 1.csv", ParseOptions{Strict: true})
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != "room 1" || !reflect.DeepEqual(s.Columns, []string{"temp", "humidity"}) {
		t.Fatalf("name %q columns %q", s.Name, s.Columns)
	}
	want := []Row{
		{Line: 2, T: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), Values: []float64{21.5, 40}},
		{Line: 4, T: time.Date(2024, 1, 1, 0, 1, 0, 0, time.UTC), Values: []float64{-1000, 41.25}},
	}
	if !reflect.DeepEqual(s.Rows, want) {
		t.Fatalf("rows = %+v, want %+v", s.Rows, want)
	}
}

func TestParseCSVBadInput(t *testing.T) {
	const hdr = "timestamp,value\n"
	const ok = "2024-01-01 00:00:00,1\n"
	cases := []struct {
		name string
		in   string
		line int   // line of the first problem
		err  error // its kind
		rows int   // rows kept when not strict (-1: fails even then)
	}{
		{"no header", ok + ok, 1, ErrNoHeader, -1},
		{"empty file", "", 1, ErrNoHeader, -1},
		{"one column", "timestamp\n" + ok, 1, ErrNoHeader, -1},
		{"header only", hdr, 0, ErrNoRows, -1},
		{"too few fields", hdr + ok + "2024-01-01 00:01:00\n" + ok, 3, ErrFieldCount, 2},
		{"too many fields", hdr + "2024-01-01 00:01:00,1,2\n" + ok, 2, ErrFieldCount, 1},
		{"bad timestamp", hdr + ok + ok + "2024-13-01 00:00:00,1\n", 4, ErrTimestamp, 2},
		{"bad value", hdr + ok + "2024-01-01 00:01:00,abc\n", 3, ErrValue, 1},
		{"empty value", hdr + "2024-01-01 00:01:00,\n" + ok, 2, ErrValue, 1},
		{"NaN", hdr + "2024-01-01 00:01:00,NaN\n" + ok, 2, ErrValue, 1},
		{"Inf", hdr + ok + "2024-01-01 00:01:00,+Inf\n", 3, ErrValue, 1},
		{"only bad rows", hdr + "x,1\n", 2, ErrTimestamp, -1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseCSV(strings.NewReader(c.in), "f.csv", ParseOptions{Strict: true})
			if !errors.Is(err, c.err) {
				t.Fatalf("strict: err = %v, want %v", err, c.err)
			}
			var le *LineError
			if c.line > 0 {
				if !errors.As(err, &le) || le.Line != c.line || le.Path != "f.csv" {
					t.Fatalf("strict: err = %#v, want a LineError at f.csv:%d", err, c.line)
				}
				if !strings.HasPrefix(err.Error(), "f.csv:") {
					t.Fatalf("message %q does not name file and line", err)
				}
			}
			var skipped []int
			s, err := ParseCSV(strings.NewReader(c.in), "f.csv", ParseOptions{OnSkip: func(e *LineError) { skipped = append(skipped, e.Line) }})
			if c.rows < 0 {
				if err == nil {
					t.Fatalf("lenient: no error, want one")
				}
				return
			}
			if err != nil {
				t.Fatalf("lenient: %v", err)
			}
			if len(s.Rows) != c.rows || s.Skipped != 1 || !reflect.DeepEqual(skipped, []int{c.line}) {
				t.Fatalf("lenient: %d rows, skipped %d at %v; want %d rows, line %d skipped", len(s.Rows), s.Skipped, skipped, c.rows, c.line)
			}
		})
	}
}

func TestParseCSVColumnNames(t *testing.T) {
	s, err := ParseCSV(strings.NewReader("time,a/b,,c d+\n2024-01-01 00:00:00,1,2,3\n"), "c.csv", ParseOptions{Strict: true})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a_b", "value2", "c_d_"}; !reflect.DeepEqual(s.Columns, want) {
		t.Fatalf("columns %q, want %q", s.Columns, want)
	}
}

func TestParseCSVDuplicateColumn(t *testing.T) {
	_, err := ParseCSV(strings.NewReader("timestamp,a,a\n2024-01-01 00:00:00,1,2\n"), "d.csv", ParseOptions{})
	if err == nil || !strings.Contains(err.Error(), "d.csv:1: duplicate column") {
		t.Fatalf("err = %v", err)
	}
}

func TestFindCSV(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{"b/z.csv", "a/y.CSV", "a/x.txt", "top.csv"} {
		p = filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	one := filepath.Join(dir, "a/x.txt")
	got, err := FindCSV(one + "," + dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{one, filepath.Join(dir, "a/y.CSV"), filepath.Join(dir, "b/z.csv"), filepath.Join(dir, "top.csv")}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	if _, err := FindCSV(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("missing path: no error")
	}
	empty := t.TempDir()
	if _, err := FindCSV(empty); err == nil {
		t.Fatal("directory without CSV: no error")
	}
}

func TestTopicToken(t *testing.T) {
	for in, want := range map[string]string{
		"nyc_taxi":        "nyc_taxi",
		"room 1/+#":       "room_1___",
		"a.b-c":           "a.b-c",
		"":                "sensor",
		"température":     "temp__rature",
		"cpu_utilization": "cpu_utilization",
	} {
		if got := TopicToken(in); got != want {
			t.Errorf("TopicToken(%q) = %q, want %q", in, got, want)
		}
	}
}
