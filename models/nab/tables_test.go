package nab

import (
	"encoding/csv"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"testing"
)

// Published NAB results (numenta/NAB commit ea702d7, MIT): per-file score
// tables of the null, numenta and ARTime detectors and final_results.json are
// copied under ../testdata/nab/results; the full set (16 detectors) is in
// ../shared/datasets/nab/results when that folder exists.
const (
	testdataResults = "../testdata/nab/results"
	repoCorpus      = "../../datasets/nab"           // the 7 realKnownCause files + all labels
	sharedCorpus    = "../../../shared/datasets/nab" // all 58 files, all results
)

// tableRow is one row of a results/<detector>/<detector>_<profile>_scores.csv.
type tableRow struct {
	File                  string
	Threshold, Score      float64
	TP, TN, FP, FN, Total int
}

func readTable(t *testing.T, path string) (rows map[string]tableRow, totals tableRow) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if len(recs) < 2 || len(recs[0]) != 10 || recs[0][2] != "File" || recs[0][4] != "Score" {
		t.Fatalf("%s: unexpected header %q", path, recs[0])
	}
	rows = map[string]tableRow{}
	for _, r := range recs[1:] {
		var tr tableRow
		tr.File = r[2]
		num := func(s string) float64 {
			if s == "" {
				return 0
			}
			v, err := strconv.ParseFloat(s, 64)
			if err != nil {
				t.Fatalf("%s: %q: %v", path, s, err)
			}
			return v
		}
		tr.Threshold, tr.Score = num(r[3]), num(r[4])
		tr.TP, tr.TN, tr.FP, tr.FN, tr.Total = int(num(r[5])), int(num(r[6])), int(num(r[7])), int(num(r[8])), int(num(r[9]))
		if r[0] == "Totals" || tr.File == "" {
			totals = tr
			continue
		}
		rows[tr.File] = tr
	}
	return rows, totals
}

func tablePath(dir, detector string, p Profile) string {
	return filepath.Join(dir, detector, detector+"_"+p.Name+"_scores.csv")
}

func readFinal(t *testing.T, path string) map[string]map[string]float64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]map[string]float64
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func labelWindows(t *testing.T) map[string][]TimeWindow {
	t.Helper()
	lw, err := ReadWindows(filepath.Join(repoCorpus, WindowsFile))
	if err != nil {
		t.Fatal(err)
	}
	return lw
}

// TestNullDetectorTables: the null detector never fires, so each file's raw
// score is -fnWeight × (its windows) and the corpus total is NullScore(116);
// window counts come from the label file alone (all 58 keys are in the
// in-repo copy). For the files of the corpus, ScoreFile with no detections on
// the file's real row windows must give the published score too.
func TestNullDetectorTables(t *testing.T) {
	lw := labelWindows(t)
	total := 0
	for _, ws := range lw {
		total += len(ws)
	}
	if len(lw) != 58 || total != 116 {
		t.Fatalf("labels: %d files, %d windows; want 58, 116", len(lw), total)
	}
	corpus := corpusForTables(t)
	for _, p := range Profiles() {
		rows, totals := readTable(t, tablePath(testdataResults, "null", p))
		if len(rows) != 58 {
			t.Fatalf("%s: %d rows", p.Name, len(rows))
		}
		for key, ws := range lw {
			r, ok := rows[key]
			if !ok {
				t.Errorf("%s: no row for %s", p.Name, key)
				continue
			}
			got := NullScore(len(ws), p)
			if !near(got, r.Score, 1e-12) || r.TP != 0 || r.FP != 0 {
				t.Errorf("%s %s: raw %g, published %g (TP %d FP %d)", p.Name, key, got, r.Score, r.TP, r.FP)
			}
		}
		for _, s := range corpus.Series {
			if got := ScoreFile(s.Len(), s.Windows, nil, p).Raw; !near(got, rows[s.Key].Score, 1e-12) {
				t.Errorf("%s %s: ScoreFile %g, published %g", p.Name, s.Key, got, rows[s.Key].Score)
			}
		}
		if !near(totals.Score, NullScore(116, p), 1e-9) {
			t.Errorf("%s: published null total %g, NullScore %g", p.Name, totals.Score, NullScore(116, p))
		}
		if got := Normalize(totals.Score, 116, p); !near(got, 0, 1e-9) {
			t.Errorf("%s: null normalises to %g", p.Name, got)
		}
	}
}

// TestNormalizePublishedTotals: each published corpus raw score (the Totals
// row's Score) maps to its final_results.json score with Normalize over 116
// windows. Uses the copied tables, and every detector's tables from
// ../shared when present.
func TestNormalizePublishedTotals(t *testing.T) {
	check := func(dir string, final map[string]map[string]float64, detectors []string) {
		for _, d := range detectors {
			for _, p := range Profiles() {
				_, totals := readTable(t, tablePath(dir, d, p))
				want, ok := final[d][p.Name]
				if !ok {
					t.Errorf("%s/%s: not in final_results.json", d, p.Name)
					continue
				}
				if got := Normalize(totals.Score, 116, p); !near(got, want, 1e-6) {
					t.Errorf("%s/%s: Normalize(%g) = %.9g, published %.9g", d, p.Name, totals.Score, got, want)
				}
			}
		}
	}
	check(testdataResults, readFinal(t, filepath.Join(testdataResults, "final_results.json")), []string{"null", "numenta", "ARTime"})

	shared := filepath.Join(sharedCorpus, "results")
	if _, err := os.Stat(shared); err != nil {
		t.Logf("skipping the other detectors: %s is absent", shared)
		return
	}
	final := readFinal(t, filepath.Join(shared, "final_results.json"))
	var ds []string
	for d := range final {
		// random's tables cover 32 of 58 files (see the README's caveats).
		if d != "random" {
			ds = append(ds, d)
		}
	}
	sort.Strings(ds)
	if len(ds) < 14 {
		t.Fatalf("final_results.json: only %d detectors", len(ds))
	}
	check(shared, final, ds)
	// bayesChangePt is not in final_results.json; the README derives 17.71 / 3.21 / 32.26.
	want := map[string]float64{"standard": 17.71, "reward_low_FP_rate": 3.21, "reward_low_FN_rate": 32.26}
	for _, p := range Profiles() {
		_, totals := readTable(t, tablePath(shared, "bayesChangePt", p))
		if got := Normalize(totals.Score, 116, p); !near(got, want[p.Name], 0.006) {
			t.Errorf("bayesChangePt/%s: %g, want %g", p.Name, got, want[p.Name])
		}
	}
}

// corpusForTables loads the full corpus from ../shared, or else the in-repo
// 7 files.
func corpusForTables(t *testing.T) *Corpus {
	t.Helper()
	dir := sharedCorpus
	if _, err := os.Stat(filepath.Join(dir, "data")); err != nil {
		t.Logf("%s is absent: checking the %s files only", sharedCorpus, repoCorpus)
		dir = repoCorpus
	}
	c, err := LoadCorpus(dir)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestPublishedRowCounts checks the corpus reader, the row mapping of the
// windows and the probationary period against the row counts of the
// published tables: Total_Count is the file's rows (the rows after the
// probationary period in ARTime's tables); TP+FN are the
// non-probationary rows inside windows and TN+FP the others, for every
// detector; for the null detector (no detections) CountRows must give the
// published row exactly. It also checks each published file score against
// the bounds our rules allow given its TP and FP row counts: with no TP row
// every window is missed (score <= -fn·windows); with no FP row nothing is
// subtracted but missed windows (score >= -fn·windows); in all cases
// -fn·windows - fp·FP <= score <= tp·windows.
func TestPublishedRowCounts(t *testing.T) {
	c := corpusForTables(t)
	if len(c.Unlabelled) != 0 {
		t.Fatalf("unlabelled files: %v", c.Unlabelled)
	}
	for _, d := range []string{"null", "numenta", "ARTime"} {
		for _, p := range Profiles() {
			rows, _ := readTable(t, tablePath(testdataResults, d, p))
			for _, s := range c.Series {
				r, ok := rows[s.Key]
				if !ok {
					t.Errorf("%s/%s: no row for %s", d, p.Name, s.Key)
					continue
				}
				n := s.Len()
				null := CountRows(n, s.Windows, nil)
				total := n
				if d == "ARTime" {
					// ARTime's tables count only the rows after the probationary period.
					total = n - Probation(n)
				}
				if r.Total != total || r.TP+r.FN != null.FN || r.TN+r.FP != null.TN {
					t.Errorf("%s/%s %s: published TP+FN %d TN+FP %d total %d; ours in-window %d out %d rows %d",
						d, p.Name, s.Key, r.TP+r.FN, r.TN+r.FP, r.Total, null.FN, null.TN, n)
				}
				if d == "null" && (null != RowCounts{TP: r.TP, TN: r.TN, FP: r.FP, FN: r.FN, Total: r.Total}) {
					t.Errorf("null/%s %s: CountRows %+v, published %+v", p.Name, s.Key, null, r)
				}
				w := float64(len(s.Windows))
				lo, hi := -p.FN*w-p.FP*float64(r.FP)-1e-9, p.TP*w+1e-9
				if r.TP == 0 {
					hi = -p.FN*w + 1e-9
				}
				if r.FP == 0 {
					lo = -p.FN*w - 1e-9
				}
				if r.Score < lo || r.Score > hi {
					t.Errorf("%s/%s %s: published score %g outside [%g, %g] (windows %d, TP %d, FP %d)",
						d, p.Name, s.Key, r.Score, lo, hi, len(s.Windows), r.TP, r.FP)
				}
			}
		}
	}
}

// TestPerfectAndNullOnCorpus: on the real windows of the corpus, a detector
// firing on the first row of every window normalises to 100, one that never
// fires to 0.
func TestPerfectAndNullOnCorpus(t *testing.T) {
	c := corpusForTables(t)
	for _, p := range Profiles() {
		var perfect, null float64
		for _, s := range c.Series {
			var det []int
			for _, w := range s.Windows {
				det = append(det, w.Start)
			}
			perfect += ScoreFile(s.Len(), s.Windows, det, p).Raw
			null += ScoreFile(s.Len(), s.Windows, nil, p).Raw
		}
		nw := c.Windows()
		if got := Normalize(perfect, nw, p); !near(got, 100, 1e-9) {
			t.Errorf("%s: perfect detector scores %g", p.Name, got)
		}
		if got := Normalize(null, nw, p); !near(got, 0, 1e-9) {
			t.Errorf("%s: null detector scores %g", p.Name, got)
		}
	}
	if math.IsNaN(Normalize(0, c.Windows(), Standard)) {
		t.Error("corpus has no windows")
	}
}
