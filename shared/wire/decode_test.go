package wire

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"reflect"
	"strconv"
	"testing"
	"time"
)

func sampleEvent() Event {
	win := make([]float64, 32)
	for i := range win {
		win[i] = 20 + float64(i%7)/10 - 1e-3*float64(i)
	}
	return Event{Agent: "gw-1", Seq: 18446744073709551615, Stream: "sensors/press-1/temp",
		TS: time.Date(2026, 11, 23, 6, 30, 1, 123456789, time.UTC), Kind: KindUncertain,
		Score: 0.7123, Low: 0.5, High: 0.9, Value: 20.2, Model: "edge@1", Window: win,
		Missing: []int{3, 4}, Created: time.Date(2026, 11, 23, 6, 30, 1, 5e8, time.UTC), Incarnation: "3f2a9c01b7d4e655"}
}

// sameEvent compares two events field by field; times by instant and
// offset (encoding/json's fixed zones are distinct pointers).
func sameEvent(a, b Event) bool {
	sameTime := func(x, y time.Time) bool {
		_, ox := x.Zone()
		_, oy := y.Zone()
		return x.Equal(y) && ox == oy && x.Location().String() == y.Location().String()
	}
	if !sameTime(a.TS, b.TS) || !sameTime(a.Created, b.Created) {
		return false
	}
	a.TS, b.TS, a.Created, b.Created = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	return reflect.DeepEqual(a, b)
}

func TestDecodeEventFastPath(t *testing.T) {
	events := []Event{sampleEvent(), {}, {Agent: "é-ü", Kind: KindAnomaly, Window: []float64{}, Missing: []int{}},
		{Score: math.MaxFloat64, Low: -math.SmallestNonzeroFloat64, Value: -0.0, Window: []float64{1e300, -2.5e-300, 0}},
		// A video event: the buckets' feature vectors.
		{Agent: "cam-gw-1", Stream: "cameras/cam-1/ae-video", Kind: KindAnomaly, Model: "ae-video@1", Window: []float64{0.4, 2.1},
			Features: []float64{2.52, 0, 0.7095, 0.0237, 0, 3, 0.04, 0.71, 0, 0.031}, FeaturesMissing: []int{4}}}
	for _, want := range events {
		data, err := json.Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		var fast Event
		if !decodeEventFast(data, &fast) {
			t.Fatalf("fast path refused %s", data)
		}
		var got, std Event
		if err := DecodeEvent(data, &got); err != nil {
			t.Fatalf("DecodeEvent(%s): %v", data, err)
		}
		if err := json.Unmarshal(data, &std); err != nil {
			t.Fatal(err)
		}
		if !sameEvent(got, std) || !sameEvent(fast, std) {
			t.Fatalf("DecodeEvent(%s) = %+v, encoding/json %+v", data, got, std)
		}
	}
}

func TestDecodeEventFallback(t *testing.T) {
	for _, in := range []string{
		`{"Agent":"gw-1","seq":3}`,                    // case-insensitive key
		`{"agent":"gw\u002d1","seq":3}`,               // escape
		`{"agent":"gw-1","extra":[1,{"a":null}]}`,     // unknown field
		`{"agent":"gw-1","agent":"gw-2"}`,             // repeated key: last wins
		`{"agent":null,"seq":null,"window":null}`,     // nulls
		`{"ts":"2026-11-23T06:30:01+02:00"}`,          // offset
		`null`,                                        // null document
		`{"agent":"gw-1","seq":1.0}`,                  // error: not an integer
		`{"agent":"gw-1","seq":-1}`,                   // error: negative
		`{"agent":"gw-1","seq":18446744073709551616}`, // error: overflow
		`{"agent":"gw-1"} x`,                          // error: trailing data
		`{"agent":"gw-1",}`,                           // error: syntax
		`{"window":[1,2,]}`,                           // error: syntax
		`{"ts":"yesterday"}`,                          // error: time
		`{"score":1e400}`,                             // error: range
		"{\"agent\":\"\xff\"}",                        // invalid UTF-8 becomes U+FFFD
	} {
		var got, std Event
		gerr := DecodeEvent([]byte(in), &got)
		serr := json.Unmarshal([]byte(in), &std)
		if (gerr == nil) != (serr == nil) {
			t.Fatalf("%s: DecodeEvent error %v, encoding/json error %v", in, gerr, serr)
		}
		if gerr == nil && !sameEvent(got, std) {
			t.Fatalf("%s: DecodeEvent %+v, encoding/json %+v", in, got, std)
		}
	}
}

func FuzzDecodeEvent(f *testing.F) {
	data, _ := json.Marshal(sampleEvent())
	f.Add(data)
	f.Add([]byte(`{"agent":"gw-1","seq":0,"stream":"s","ts":"2026-01-02T03:04:05Z","kind":"anomaly","score":1,"low":0,"high":1,"value":3,"model":"m@1","window":[1,2,3],"created":"2026-01-02T03:04:05.5+01:00"}`))
	f.Add([]byte(`{"Agent":"x","missing":[-1,0,7],"window":[]}`))
	f.Add([]byte(`{"seq":1e2,"score":-0.0e-0}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var got, std Event
		gerr := DecodeEvent(data, &got)
		serr := json.Unmarshal(data, &std)
		if (gerr == nil) != (serr == nil) {
			t.Fatalf("%q: DecodeEvent error %v, encoding/json error %v", data, gerr, serr)
		}
		if gerr == nil && !sameEvent(got, std) {
			t.Fatalf("%q: DecodeEvent %+v, encoding/json %+v", data, got, std)
		}
	})
}

func BenchmarkDecodeEvent(b *testing.B) {
	data, _ := json.Marshal(sampleEvent())
	b.Run("DecodeEvent", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			var ev Event
			if err := DecodeEvent(data, &ev); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			var ev Event
			if err := json.Unmarshal(data, &ev); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestExactFloat compares the fast float path with strconv bit for bit.
func TestExactFloat(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 200000; i++ {
		var lit string
		switch i % 3 {
		case 0:
			lit = strconv.FormatFloat(rng.NormFloat64()*math.Pow(10, float64(rng.IntN(30)-15)), 'f', rng.IntN(12), 64)
		case 1:
			lit = strconv.FormatFloat(rng.Float64()*100, 'g', -1, 64)
		default:
			lit = strconv.FormatInt(rng.Int64N(1e15), 10) + "e" + strconv.Itoa(rng.IntN(60)-30)
		}
		want, err := strconv.ParseFloat(lit, 64)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := exactFloat([]byte(lit))
		if ok && math.Float64bits(got) != math.Float64bits(want) {
			t.Fatalf("exactFloat(%s) = %v, strconv %v", lit, got, want)
		}
	}
}
