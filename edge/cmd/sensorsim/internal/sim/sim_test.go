package sim

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/outpost-iot/outpost/shared/testenv"
)

// received is one message seen by the test's subscriber.
type received struct {
	Topic string
	TS    string             `json:"ts"`
	Value *float64           `json:"value"`
	Vals  map[string]float64 `json:"values"`
}

// subscriber collects every message under prefix/# at QoS 1.
type subscriber struct {
	mu   sync.Mutex
	msgs []received
	bad  []string
}

func subscribe(t *testing.T, url, filter string) *subscriber {
	t.Helper()
	s := &subscriber{}
	opts := mqtt.NewClientOptions().AddBroker(url).SetClientID("sim-test-sub").SetOrderMatters(true)
	c := mqtt.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscriber connect: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	tok := c.Subscribe(filter, 1, func(_ mqtt.Client, m mqtt.Message) {
		var r received
		err := json.Unmarshal(m.Payload(), &r)
		s.mu.Lock()
		defer s.mu.Unlock()
		if err != nil {
			s.bad = append(s.bad, string(m.Payload()))
			return
		}
		r.Topic = m.Topic()
		s.msgs = append(s.msgs, r)
	})
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	return s
}

// wait returns the messages once n arrived (or fails after 10 s), then
// checks that no more arrive for a short moment.
func (s *subscriber) wait(t *testing.T, n int) []received {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.mu.Lock()
		got := len(s.msgs) + len(s.bad)
		s.mu.Unlock()
		if got >= n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("received %d messages, want %d", got, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.bad) > 0 {
		t.Fatalf("undecodable payloads: %q", s.bad)
	}
	if len(s.msgs) != n {
		t.Fatalf("received %d messages, want exactly %d", len(s.msgs), n)
	}
	return append([]received(nil), s.msgs...)
}

// spikeLog is a spike record as Run logs it (JSON handler).
type spikeLog struct {
	Msg    string                        `json:"msg"`
	Device string                        `json:"device"`
	Sensor string                        `json:"sensor"`
	Topic  string                        `json:"topic"`
	TS     string                        `json:"ts"`
	Value  float64                       `json:"value"`
	Orig   float64                       `json:"original"`
	Mean   float64                       `json:"mean"`
	Std    float64                       `json:"stddev"`
	Values map[string]map[string]float64 `json:"values"`
}

func spikesIn(t *testing.T, log []byte) []spikeLog {
	t.Helper()
	var out []spikeLog
	sc := bufio.NewScanner(bytes.NewReader(log))
	for sc.Scan() {
		var l spikeLog
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("log line %q is not JSON: %v", sc.Text(), err)
		}
		if l.Msg == "spike" {
			out = append(out, l)
		}
	}
	return out
}

func writeFile(t testing.TB, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// smoothCSV writes n readings, one a minute, of a gentle wave; row 3
// repeats row 2's timestamp and row 6 steps back a minute, as NAB does.
func smoothCSV(n int, cols ...string) string {
	var b strings.Builder
	b.WriteString("timestamp," + strings.Join(cols, ",") + "\n")
	t0 := time.Date(2014, 3, 7, 3, 41, 0, 0, time.UTC)
	for i := 0; i < n; i++ {
		m := i
		switch {
		case i >= 3 && i < 6:
			m = i - 1
		case i == 6:
			m = 3
		}
		b.WriteString(t0.Add(time.Duration(m) * time.Minute).Format("2006-01-02 15:04:05"))
		for c := range cols {
			fmt.Fprintf(&b, ",%g", 50+float64(c)*10+math.Sin(float64(i)/3))
		}
		b.WriteString("\n")
	}
	return b.String()
}

// Three devices replay two files (one with two value columns) through a real
// mosquitto with spikes every 10 readings; the subscriber sees every reading,
// in file order per device, and the spikes the log reports.
func TestReplayThreeDevices(t *testing.T) {
	mq := testenv.StartMosquitto(t)
	dir := t.TempDir()
	const n = 30
	fa := writeFile(t, dir, "ec2 latency.csv", smoothCSV(n, "value"))
	fb := writeFile(t, dir, "room.csv", smoothCSV(n, "temp", "humidity"))
	sub := subscribe(t, mq.URL(), "sensors/#")

	var log bytes.Buffer
	res, err := Run(context.Background(), Config{
		MQTTURL: mq.URL(),
		Files:   []string{fa, fb},
		Devices: 3,
		Time:    TimeOriginal,
		Spike:   SpikeEvery{N: 10},
		Log:     slog.New(slog.NewJSONHandler(&log, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Devices != 3 || res.Published != 3*n || res.Failed != 0 || res.Spikes != 9 {
		t.Fatalf("result = %+v, want 3 devices, %d published, 9 spikes", res, 3*n)
	}
	msgs := sub.wait(t, 3*n)

	files := map[string]*Series{}
	for dev, f := range map[string]string{"dev-0": fa, "dev-1": fb, "dev-2": fa} {
		s, err := LoadCSV(f, ParseOptions{Strict: true})
		if err != nil {
			t.Fatal(err)
		}
		files[dev] = s
	}
	topics := map[string]string{
		"sensors/dev-0/ec2_latency": "dev-0",
		"sensors/dev-1/room":        "dev-1",
		"sensors/dev-2/ec2_latency": "dev-2",
	}
	spikes := spikesIn(t, log.Bytes())
	if len(spikes) != 9 {
		t.Fatalf("%d spikes logged, want 9:\n%s", len(spikes), log.String())
	}
	spikeAt := map[string]spikeLog{} // topic+ts
	for _, s := range spikes {
		if topics[s.Topic] != s.Device || !strings.HasSuffix(s.Topic, "/"+s.Sensor) {
			t.Fatalf("spike record names %s/%s on %s", s.Device, s.Sensor, s.Topic)
		}
		spikeAt[s.Topic+" "+s.TS] = s
	}

	next := map[string]int{} // per device, the next row expected
	for _, m := range msgs {
		dev, ok := topics[m.Topic]
		if !ok {
			t.Fatalf("unexpected topic %q", m.Topic)
		}
		s := files[dev]
		i := next[dev]
		next[dev]++
		row := s.Rows[i]
		if want := row.T.Format(time.RFC3339); m.TS != want {
			t.Fatalf("%s message %d: ts %q, want %q (out of order?)", dev, i, m.TS, want)
		}
		sp, isSpike := spikeAt[m.Topic+" "+m.TS]
		if wantSpike := (i+1)%10 == 0; wantSpike != isSpike {
			// Row 3 repeats row 2's time, but spikes fall on rows 10, 20, 30.
			t.Fatalf("%s row %d: spike %v, want %v", dev, i+1, isSpike, wantSpike)
		}
		if len(s.Columns) == 1 {
			if m.Value == nil || m.Vals != nil {
				t.Fatalf("%s: single-column payload without \"value\": %+v", dev, m)
			}
			want := row.Values[0]
			if isSpike {
				want = sp.Value
				if sp.Orig != row.Values[0] || sp.Std <= 0 || math.Abs(sp.Value-(sp.Mean+10*sp.Std)) > 1e-9 || sp.Value <= sp.Orig {
					t.Fatalf("%s spike record %+v does not fit row %v", dev, sp, row.Values)
				}
			}
			if *m.Value != want {
				t.Fatalf("%s row %d: value %v, want %v", dev, i+1, *m.Value, want)
			}
			continue
		}
		if m.Value != nil || len(m.Vals) != 2 {
			t.Fatalf("%s: multi-column payload %+v", dev, m)
		}
		for c, col := range s.Columns {
			want := row.Values[c]
			if isSpike {
				want = sp.Values[col]["value"]
				if sp.Values[col]["original"] != row.Values[c] || want <= row.Values[c] {
					t.Fatalf("%s spike record %+v does not fit row %v", dev, sp, row.Values)
				}
			}
			if m.Vals[col] != want {
				t.Fatalf("%s row %d column %s: %v, want %v", dev, i+1, col, m.Vals[col], want)
			}
		}
	}
	for dev := range files {
		if next[dev] != n {
			t.Fatalf("%s: %d readings, want %d", dev, next[dev], n)
		}
	}
}

// With --time now, timestamps start at the replay and advance at data pace
// (clamped), and looping continues after the last reading; --count stops it.
func TestReplayNowLoopCount(t *testing.T) {
	mq := testenv.StartMosquitto(t)
	f := writeFile(t, t.TempDir(), "s.csv", smoothCSV(10, "value"))
	sub := subscribe(t, mq.URL(), "x/#")
	before := time.Now().UTC()
	res, err := Run(context.Background(), Config{
		MQTTURL:     mq.URL(),
		Files:       []string{f},
		TopicPrefix: "x",
		Sensor:      "temp",
		Loop:        true,
		Count:       25,
		QoS0:        true,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Published != 25 {
		t.Fatalf("published %d, want 25", res.Published)
	}
	msgs := sub.wait(t, 25)
	s, _ := LoadCSV(f, ParseOptions{})
	off := DataOffsets(s.Rows)
	pass := off[len(off)-1] + TypicalStep(s.Rows)
	var start time.Time
	for i, m := range msgs {
		if m.Topic != "x/dev-0/temp" {
			t.Fatalf("topic %q", m.Topic)
		}
		ts, err := time.Parse(time.RFC3339Nano, m.TS)
		if err != nil || !strings.HasSuffix(m.TS, "Z") {
			t.Fatalf("ts %q: not RFC 3339 UTC (%v)", m.TS, err)
		}
		if i == 0 {
			start = ts
			if start.Before(before.Add(-time.Second)) || start.After(time.Now().Add(time.Second)) {
				t.Fatalf("first ts %v is not now (%v)", start, before)
			}
		}
		want := start.Add(time.Duration(i/10)*pass + off[i%10])
		if !ts.Equal(want) {
			t.Fatalf("reading %d: ts %v, want %v", i, ts, want)
		}
		if *m.Value != s.Rows[i%10].Values[0] {
			t.Fatalf("reading %d: value %v, want %v", i, *m.Value, s.Rows[i%10].Values[0])
		}
	}
}

// Cancelling a slow replay stops it cleanly: no error, what was sent is
// acknowledged.
func TestReplayCancel(t *testing.T) {
	mq := testenv.StartMosquitto(t)
	sub := subscribe(t, mq.URL(), "sensors/#")
	f := writeFile(t, t.TempDir(), "s.csv", smoothCSV(10, "value"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var res Result
	var err error
	go func() {
		defer close(done)
		// One data minute per wall hour: only the first reading is due.
		res, err = Run(ctx, Config{MQTTURL: mq.URL(), Files: []string{f}, Speedup: 1.0 / 60})
	}()
	// Cancel once the first reading is out (a fixed sleep could cancel a
	// slow connect before anything was sent).
	sub.wait(t, 1)
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if err != nil || res.Published != 1 || res.Failed != 0 {
		t.Fatalf("after cancel: %+v, %v; want 1 published, no error", res, err)
	}
}

func TestRunErrors(t *testing.T) {
	dir := t.TempDir()
	bad := writeFile(t, dir, "bad.csv", "timestamp,value\n2024-01-01 00:00:00,1\n2024-01-01 00:01:00,x\n")
	_, err := Run(context.Background(), Config{Files: []string{bad}, Strict: true})
	if err == nil || !strings.Contains(err.Error(), "bad.csv:3:") {
		t.Fatalf("strict bad file: %v", err)
	}
	_, err = Run(context.Background(), Config{Files: []string{bad}, MQTTURL: fmt.Sprintf("tcp://127.0.0.1:%d", testenv.FreePort(t)), Timeout: 2 * time.Second})
	if err == nil || !strings.Contains(err.Error(), "connect") {
		t.Fatalf("no broker: %v", err)
	}
	for _, c := range []Config{
		{},
		{Files: []string{bad}, Time: "later"},
		{Files: []string{bad}, Sensor: "a/b"},
		{Files: []string{bad}, Speedup: -1},
	} {
		if _, err := Run(context.Background(), c); err == nil {
			t.Errorf("Run(%+v): no error", c)
		}
	}
}

// A broker restart mid-replay: paho reconnects by itself, resends what was in
// flight, and the replay finishes with every reading acknowledged.
func TestReplaySurvivesBrokerRestart(t *testing.T) {
	mq := testenv.StartMosquitto(t)
	f := writeFile(t, t.TempDir(), "s.csv", smoothCSV(50, "value"))

	var mu sync.Mutex
	seen := map[string]bool{}
	handler := func(_ mqtt.Client, m mqtt.Message) {
		var r received
		if json.Unmarshal(m.Payload(), &r) == nil && r.Value != nil {
			mu.Lock()
			seen[fmt.Sprint(r.TS, *r.Value)] = true
			mu.Unlock()
		}
	}
	subscribed := make(chan error, 10)
	opts := mqtt.NewClientOptions().AddBroker(mq.URL()).SetClientID("sim-restart-sub").
		SetCleanSession(false).SetAutoReconnect(true).SetMaxReconnectInterval(200 * time.Millisecond).
		SetOnConnectHandler(func(c mqtt.Client) {
			// Subscribe on every connection, in case the session was lost.
			go func() {
				tok := c.Subscribe("sensors/#", 1, handler)
				tok.WaitTimeout(5 * time.Second)
				subscribed <- tok.Error()
			}()
		})
	sub := mqtt.NewClient(opts)
	if tok := sub.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscriber connect: %v", tok.Error())
	}
	defer sub.Disconnect(100)
	if err := <-subscribed; err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(seen) }

	const total = 600
	type out struct {
		res Result
		err error
	}
	done := make(chan out, 1)
	go func() {
		res, err := Run(context.Background(), Config{MQTTURL: mq.URL(), Files: []string{f}, Loop: true, Count: total, Rate: 300})
		done <- out{res, err}
	}()
	for deadline := time.Now().Add(10 * time.Second); count() < 100; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("only %d readings before the restart", count())
		}
	}
	mq.Restart()
	var o out
	select {
	case o = <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("replay did not finish after the broker restart")
	}
	if o.err != nil || o.res.Published != total || o.res.Failed != 0 {
		t.Fatalf("after restart: %+v, %v; want %d published", o.res, o.err, total)
	}
	// Every distinct reading reaches the persistent subscriber (QoS 1 may
	// repeat some; timestamps are distinct in --time now with looping).
	for deadline := time.Now().Add(10 * time.Second); count() < total; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			break
		}
	}
	if n := count(); n != total {
		t.Fatalf("subscriber saw %d distinct readings, want %d", n, total)
	}
}
