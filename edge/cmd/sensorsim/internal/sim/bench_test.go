package sim

import (
	"context"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/shared/testenv"
)

func BenchmarkAppendPayload(b *testing.B) {
	ts := time.Date(2014, 3, 7, 3, 41, 0, 0, time.UTC)
	var buf []byte
	for b.Loop() {
		buf = AppendPayload(buf[:0], ts, nil, []float64{45.868})
	}
}

// BenchmarkReplay publishes b.N readings from 8 devices through mosquitto,
// as fast as possible.
func BenchmarkReplay(b *testing.B) {
	for _, qos0 := range []bool{false, true} {
		name := "qos1"
		if qos0 {
			name = "qos0"
		}
		b.Run(name, func(b *testing.B) {
			mq := testenv.StartMosquitto(b)
			f := writeFile(b, b.TempDir(), "s.csv", smoothCSV(1000, "value"))
			b.ResetTimer()
			res, err := Run(context.Background(), Config{MQTTURL: mq.URL(), Files: []string{f}, Devices: 8, Loop: true, Count: int64(b.N), QoS0: qos0})
			if err != nil || res.Published != int64(b.N) {
				b.Fatalf("%+v %v", res, err)
			}
			b.ReportMetric(res.PerSecond(), "msgs/s")
		})
	}
}
