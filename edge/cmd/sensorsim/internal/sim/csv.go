// Package sim replays time series stored as CSV files (the NAB layout:
// a header "timestamp,value" and one reading per line) as MQTT sensor
// readings for many simulated devices at once, paced by the series' own
// timestamps at a chosen speed-up, and injects spikes on request.
//
// The command edge/cmd/sensorsim is a thin main around Run; this package is
// internal to it.
package sim

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Sentinel errors of CSV parsing; a LineError wraps one of them or a
// conversion error.
var (
	// ErrNoHeader: the first non-blank line is not a header.
	ErrNoHeader = errors.New("missing header line (expected timestamp,value[,value...])")
	// ErrFieldCount: a row has a different number of fields than the header.
	ErrFieldCount = errors.New("wrong number of fields")
	// ErrTimestamp: the first field of a row is not a timestamp.
	ErrTimestamp = errors.New("bad timestamp")
	// ErrValue: a value field is not a finite number.
	ErrValue = errors.New("bad value")
	// ErrNoRows: a file holds no valid reading.
	ErrNoRows = errors.New("no readings")
)

// LineError is a problem at a line of a CSV file.
type LineError struct {
	Path string // the file
	Line int    // 1-based line number
	Err  error  // what is wrong
}

// Error reports "path:line: problem".
func (e *LineError) Error() string { return fmt.Sprintf("%s:%d: %v", e.Path, e.Line, e.Err) }

// Unwrap returns the underlying problem.
func (e *LineError) Unwrap() error { return e.Err }

// Row is one reading of a series.
type Row struct {
	Line   int       // line number in the file
	T      time.Time // the reading's time, UTC
	Values []float64 // one value per value column
}

// Series is a parsed CSV file.
type Series struct {
	Path    string   // the file it was read from
	Name    string   // the file's base name without .csv
	Columns []string // value column names (the header without the timestamp column)
	Rows    []Row    // readings in file order
	Skipped int      // bad lines skipped (non-strict parsing)
}

// ParseOptions tunes ParseCSV. The zero value skips bad lines silently.
type ParseOptions struct {
	// Strict makes the first bad line an error instead of skipping it.
	Strict bool
	// OnSkip, if set, is called with each skipped bad line.
	OnSkip func(*LineError)
}

// timeLayouts are the timestamp forms accepted in the first column; NAB uses
// the first. Times without a zone are UTC.
var timeLayouts = []string{
	"2006-01-02 15:04:05",
	"2006-01-02 15:04:05.999999999",
	time.RFC3339Nano,
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04",
	"2006-01-02",
}

// ParseTime parses a CSV timestamp (NAB's "YYYY-MM-DD HH:MM:SS", or RFC 3339)
// as UTC.
func ParseTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%w %q", ErrTimestamp, s)
}

// splitFields splits a CSV line on commas, trimming blanks and one pair of
// surrounding double quotes from each field. Quoted commas are not supported:
// the files we replay hold timestamps, numbers and plain column names.
func splitFields(line string) []string {
	f := strings.Split(line, ",")
	for i, s := range f {
		s = strings.TrimSpace(s)
		if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
			s = s[1 : len(s)-1]
		}
		f[i] = s
	}
	return f
}

// ParseCSV reads a series from r; path names it in errors and gives its name.
// The first non-blank line is the header: a timestamp column and one or more
// value columns. Blank lines are ignored. Bad lines are skipped (and passed to
// opts.OnSkip) or, with opts.Strict, returned as a *LineError. Rows are kept in
// file order even when timestamps repeat or go backwards.
func ParseCSV(r io.Reader, path string, opts ParseOptions) (*Series, error) {
	s := &Series{Path: path, Name: strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	line := 0
	bad := func(err error) error {
		le := &LineError{Path: path, Line: line, Err: err}
		if opts.Strict {
			return le
		}
		s.Skipped++
		if opts.OnSkip != nil {
			opts.OnSkip(le)
		}
		return nil
	}
	for sc.Scan() {
		line++
		text := sc.Text()
		if line == 1 {
			text = strings.TrimPrefix(text, "\ufeff")
		}
		if strings.TrimSpace(text) == "" {
			continue
		}
		f := splitFields(text)
		if s.Columns == nil {
			if _, err := ParseTime(f[0]); err == nil || len(f) < 2 {
				return nil, &LineError{Path: path, Line: line, Err: ErrNoHeader}
			}
			cols, err := valueColumns(f[1:])
			if err != nil {
				return nil, &LineError{Path: path, Line: line, Err: err}
			}
			s.Columns = cols
			continue
		}
		if len(f) != len(s.Columns)+1 {
			if err := bad(fmt.Errorf("%w: %d fields, header has %d", ErrFieldCount, len(f), len(s.Columns)+1)); err != nil {
				return nil, err
			}
			continue
		}
		t, err := ParseTime(f[0])
		if err != nil {
			if err := bad(err); err != nil {
				return nil, err
			}
			continue
		}
		vals := make([]float64, len(s.Columns))
		ok := true
		for i, v := range f[1:] {
			x, perr := strconv.ParseFloat(v, 64)
			if perr != nil || math.IsNaN(x) || math.IsInf(x, 0) {
				if err := bad(fmt.Errorf("%w %q in column %q", ErrValue, v, s.Columns[i])); err != nil {
					return nil, err
				}
				ok = false
				break
			}
			vals[i] = x
		}
		if ok {
			s.Rows = append(s.Rows, Row{Line: line, T: t, Values: vals})
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s after line %d: %w", path, line, err)
	}
	if s.Columns == nil {
		return nil, &LineError{Path: path, Line: line + 1, Err: ErrNoHeader}
	}
	if len(s.Rows) == 0 {
		return nil, fmt.Errorf("%s: %w", path, ErrNoRows)
	}
	return s, nil
}

// valueColumns checks and names the value columns of a header. Names are
// made topic tokens (the edge agent appends them to the stream's topic):
// "a/b" becomes "a_b"; empty names become value<i> (1-based); duplicates are
// an error.
func valueColumns(f []string) ([]string, error) {
	cols := make([]string, len(f))
	seen := map[string]bool{}
	for i, c := range f {
		if c == "" {
			c = "value" + strconv.Itoa(i+1)
		}
		c = TopicToken(c)
		if seen[c] {
			return nil, fmt.Errorf("duplicate column %q in header", c)
		}
		seen[c] = true
		cols[i] = c
	}
	return cols, nil
}

// LoadCSV opens and parses one file.
func LoadCSV(path string, opts ParseOptions) (*Series, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open series: %w", err)
	}
	defer f.Close()
	return ParseCSV(f, path, opts)
}

// FindCSV expands a data specification into CSV files: comma-separated
// entries, each a file or a directory searched recursively for *.csv. Files
// found in a directory are sorted by path; the entries keep their order.
func FindCSV(spec string) ([]string, error) {
	var files []string
	for _, e := range strings.Split(spec, ",") {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		st, err := os.Stat(e)
		if err != nil {
			return nil, fmt.Errorf("data: %w", err)
		}
		if !st.IsDir() {
			files = append(files, e)
			continue
		}
		var found []string
		err = filepath.WalkDir(e, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() && strings.EqualFold(filepath.Ext(p), ".csv") {
				found = append(found, p)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("data: search %s: %w", e, err)
		}
		if len(found) == 0 {
			return nil, fmt.Errorf("data: no *.csv under %s", e)
		}
		sort.Strings(found)
		files = append(files, found...)
	}
	if len(files) == 0 {
		return nil, errors.New("data: no CSV files given")
	}
	return files, nil
}

// TopicToken turns a name into a valid MQTT topic level: letters, digits,
// '_', '-' and '.' are kept, anything else becomes '_'.
func TopicToken(name string) string {
	b := []byte(name)
	for i, c := range b {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.'
		if !ok {
			b[i] = '_'
		}
	}
	if len(b) == 0 {
		return "sensor"
	}
	return string(b)
}
