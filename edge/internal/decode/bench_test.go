package decode

import (
	"fmt"
	"testing"
	"time"
)

func BenchmarkSenML(b *testing.B) {
	d, _ := NewSenML("")
	p := []byte(`[{"bn":"urn:dev:ow:10e2073a0108006:","bt":1.276020076001e+09,"bu":"A","n":"voltage","u":"V","v":120.1},{"n":"current","t":-5,"v":1.2},{"n":"current","t":-4,"v":1.3}]`)
	now := time.Now()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := d.DecodeAt("senml/gw", p, now); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*3)/b.Elapsed().Seconds(), "records/s")
}

func BenchmarkVideo(b *testing.B) {
	v, _ := NewVideo("cameras/{camera}", VideoOptions{})
	t0 := time.Date(2026, 11, 23, 6, 0, 0, 0, time.UTC)
	frames := make([][]byte, 250)
	for i := range frames {
		objs := ""
		for k := 0; k < 8; k++ {
			if k > 0 {
				objs += ","
			}
			objs += fmt.Sprintf(`{"class":"person","confidence":0.9,"bbox":[%d,%d,40,100]}`, 100*k+i, 300+k)
		}
		frames[i] = []byte(fmt.Sprintf(`{"camera":"cam-1","ts":%d,"frame":%d,"objects":[%s]}`, t0.Add(time.Duration(i)*40*time.Millisecond).UnixMilli(), i, objs))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// Later rounds are late frames after the first pass; use a fresh
		// decoder per pass of 250 frames (10 buckets).
		if i%len(frames) == 0 {
			v, _ = NewVideo("cameras/{camera}", VideoOptions{})
		}
		if _, err := v.Decode("cameras/cam-1/detections", frames[i%len(frames)]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
}
