package nab

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// TimeLayout is the layout of NAB's timestamps (no time zone; read as UTC).
const TimeLayout = "2006-01-02 15:04:05"

// WindowsFile is the path of the label windows inside a corpus folder.
const WindowsFile = "labels/combined_windows.json"

// Series is one data file of a corpus: every row, in file order.
type Series struct {
	// Key is the file's path relative to the corpus's data folder, with
	// forward slashes, e.g. "realKnownCause/nyc_taxi.csv"; it is the key of
	// the label files.
	Key string
	// Columns names the value columns (every column but timestamp).
	Columns []string
	// Times holds each row's timestamp, in UTC. Not always increasing: NAB
	// files repeat timestamps and step back once.
	Times []time.Time
	// Values holds each row's values, in the order of Columns.
	Values [][]float64
	// Windows are the file's label windows as row ranges, sorted; empty if the
	// file has none (or is not in the labels).
	Windows []Window
	// Labelled says the file is a key of the label file (possibly with no
	// windows).
	Labelled bool
}

// Len is the number of rows.
func (s *Series) Len() int { return len(s.Times) }

// Category is the first element of Key (the folder under data/).
func (s *Series) Category() string {
	if i := strings.IndexByte(s.Key, '/'); i >= 0 {
		return s.Key[:i]
	}
	return ""
}

// Corpus is a set of series in NAB's layout.
type Corpus struct {
	// Dir is the corpus folder (holding data/ and labels/).
	Dir string
	// Series are the data files, sorted by key.
	Series []*Series
	// Unlabelled lists data files that are not keys of the label file.
	Unlabelled []string
}

// Windows is the total number of label windows.
func (c *Corpus) Windows() int {
	n := 0
	for _, s := range c.Series {
		n += len(s.Windows)
	}
	return n
}

// Rows is the total number of rows.
func (c *Corpus) Rows() int {
	n := 0
	for _, s := range c.Series {
		n += s.Len()
	}
	return n
}

// ErrNoData is returned by LoadCorpus when the folder holds no data files.
var ErrNoData = errors.New("nab: no data/<category>/<name>.csv files")

// LoadCorpus reads every data/**/*.csv file under dir and the windows of
// labels/combined_windows.json. Label keys without a data file are ignored
// (a corpus may be a subset of NAB); data files without a key have no
// windows and are listed in Unlabelled.
func LoadCorpus(dir string) (*Corpus, error) {
	dataDir := filepath.Join(dir, "data")
	var keys []string
	err := filepath.WalkDir(dataDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !strings.HasSuffix(d.Name(), ".csv") {
			return nil
		}
		rel, err := filepath.Rel(dataDir, path)
		if err != nil {
			return err
		}
		keys = append(keys, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("nab: listing %s: %w", dataDir, err)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w in %s", ErrNoData, dir)
	}
	sort.Strings(keys)
	labels, err := ReadWindows(filepath.Join(dir, filepath.FromSlash(WindowsFile)))
	if err != nil {
		return nil, err
	}
	c := &Corpus{Dir: dir}
	for _, key := range keys {
		s, err := ReadSeries(filepath.Join(dataDir, filepath.FromSlash(key)))
		if err != nil {
			return nil, err
		}
		s.Key = key
		tw, ok := labels[key]
		s.Labelled = ok
		if !ok {
			c.Unlabelled = append(c.Unlabelled, key)
		}
		if s.Windows, err = RowWindows(s.Times, tw); err != nil {
			return nil, fmt.Errorf("nab: %s: %w", key, err)
		}
		c.Series = append(c.Series, s)
	}
	return c, nil
}

// ReadSeries reads one data file: a header with a "timestamp" column and one
// or more value columns, then one row per reading, kept in file order. Key is
// left empty.
func ReadSeries(path string) (*Series, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("nab: %w", err)
	}
	defer f.Close()
	s, err := readSeries(bufio.NewReader(f))
	if err != nil {
		return nil, fmt.Errorf("nab: %s: %w", path, err)
	}
	return s, nil
}

func readSeries(r io.Reader) (*Series, error) {
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	head, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("reading header: %w", err)
	}
	tcol := -1
	var cols []int
	s := &Series{}
	for i, h := range head {
		h = strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))
		if h == "timestamp" {
			tcol = i
			continue
		}
		cols = append(cols, i)
		s.Columns = append(s.Columns, h)
	}
	if tcol < 0 {
		return nil, errors.New("no timestamp column in the header")
	}
	if len(cols) == 0 {
		return nil, errors.New("no value column in the header")
	}
	for line := 2; ; line++ {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		ts, err := ParseTime(rec[tcol])
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		vals := make([]float64, len(cols))
		for j, c := range cols {
			v, err := strconv.ParseFloat(strings.TrimSpace(rec[c]), 64)
			if err != nil {
				return nil, fmt.Errorf("line %d, column %s: %w", line, s.Columns[j], err)
			}
			vals[j] = v
		}
		s.Times = append(s.Times, ts)
		s.Values = append(s.Values, vals)
	}
	return s, nil
}

// ParseTime parses a NAB timestamp, "YYYY-MM-DD HH:MM:SS" with an optional
// fraction (the label files write ".000000"), as UTC.
func ParseTime(s string) (time.Time, error) {
	t, err := time.Parse("2006-01-02 15:04:05.999999999", strings.TrimSpace(s))
	if err != nil {
		return time.Time{}, fmt.Errorf("nab: timestamp %q: %w", s, err)
	}
	return t, nil
}

// TimeWindow is a label window as written in the label file: inclusive
// start and end timestamps.
type TimeWindow struct {
	Start, End time.Time
}

// ReadWindows reads a combined_windows.json file: an object whose keys are
// data paths relative to data/ and whose values are lists of [start, end]
// timestamp pairs.
func ReadWindows(path string) (map[string][]TimeWindow, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("nab: reading windows: %w", err)
	}
	var raw map[string][][]string
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("nab: %s: %w", path, err)
	}
	out := make(map[string][]TimeWindow, len(raw))
	for key, ws := range raw {
		tws := make([]TimeWindow, 0, len(ws))
		for _, w := range ws {
			if len(w) != 2 {
				return nil, fmt.Errorf("nab: %s: %s: window %q is not a [start, end] pair", path, key, w)
			}
			a, err := ParseTime(w[0])
			if err != nil {
				return nil, fmt.Errorf("nab: %s: %s: %w", path, key, err)
			}
			b, err := ParseTime(w[1])
			if err != nil {
				return nil, fmt.Errorf("nab: %s: %s: %w", path, key, err)
			}
			tws = append(tws, TimeWindow{Start: a, End: b})
		}
		out[key] = tws
	}
	return out, nil
}

// RowWindows turns timestamp windows into row windows of a file whose rows
// have timestamps times (in file order). A window starts at the first row
// whose timestamp is at or after its start, and runs on, row by row, while
// the next row's timestamp is at or before its end: in NAB, where both ends
// are timestamps of existing rows and no end falls on a repeated timestamp,
// these are exactly the rows of its ends. Windows that hold no row are
// dropped; the result is sorted by start row.
func RowWindows(times []time.Time, tws []TimeWindow) ([]Window, error) {
	var out []Window
	for _, tw := range tws {
		if tw.End.Before(tw.Start) {
			return nil, fmt.Errorf("window %s..%s ends before it starts", tw.Start.Format(TimeLayout), tw.End.Format(TimeLayout))
		}
		start := -1
		for i, t := range times {
			if !t.Before(tw.Start) {
				start = i
				break
			}
		}
		if start < 0 || times[start].After(tw.End) {
			continue
		}
		end := start
		for end+1 < len(times) && !times[end+1].After(tw.End) {
			end++
		}
		out = append(out, Window{Start: start, End: end})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Start < out[j].Start })
	for i := 1; i < len(out); i++ {
		if out[i].Start <= out[i-1].End {
			return nil, fmt.Errorf("windows at rows %d..%d and %d..%d overlap", out[i-1].Start, out[i-1].End, out[i].Start, out[i].End)
		}
	}
	return out, nil
}
