package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/outpost-iot/outpost/shared/testenv"
)

func TestHelpDocumentsFlags(t *testing.T) {
	var out bytes.Buffer
	if code := run([]string{"-h"}, &out); code != 0 {
		t.Fatalf("-h exit %d", code)
	}
	for _, f := range []string{"-mqtt", "-username", "-password", "-data", "-devices", "-sensor", "-topic-prefix",
		"-speedup", "-rate", "-time", "-spike-every", "-spike-sigma", "-qos", "-count", "-loop", "-client-id", "-strict"} {
		if !strings.Contains(out.String(), "  "+f+" ") && !strings.Contains(out.String(), "  "+f+"\n") {
			t.Errorf("-h does not document %s", f)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	dir := t.TempDir()
	csv := filepath.Join(dir, "a.csv")
	if err := os.WriteFile(csv, []byte("timestamp,value\n2024-01-01 00:00:00,1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"--qos", "2", "--data", csv},
		{"--spike-every", "often", "--data", csv},
		{"--time", "yesterday", "--data", csv},
		{"--data", filepath.Join(dir, "missing")},
		{"--nope"},
		{"--data", csv, "extra"},
	} {
		var out bytes.Buffer
		if code := run(args, &out); code != 2 {
			t.Errorf("%q: exit %d, want 2 (%s)", args, code, out.String())
		}
	}
}

// From this directory the default data is the repository's NAB copy.
func TestDefaultData(t *testing.T) {
	d := defaultData()
	if _, err := os.Stat(filepath.Join("..", "..", "..", nabDir)); err != nil {
		t.Skip("no NAB data in this checkout")
	}
	if filepath.Clean(d) != filepath.Join("..", "..", "..", nabDir) {
		t.Fatalf("defaultData() = %q", d)
	}
}

// The command replays the real NAB files for 3 devices through mosquitto and
// reports spikes and a summary as JSON on stderr.
func TestCommandReplaysNAB(t *testing.T) {
	if _, err := os.Stat(filepath.Join("..", "..", "..", nabDir)); err != nil {
		t.Skip("no NAB data in this checkout")
	}
	mq := testenv.StartMosquitto(t)
	var got atomic.Int64
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(mq.URL()).SetClientID("cmd-test-sub"))
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer c.Disconnect(100)
	tok := c.Subscribe("sensors/+/+", 1, func(_ mqtt.Client, m mqtt.Message) {
		var p struct {
			TS    string   `json:"ts"`
			Value *float64 `json:"value"`
		}
		if json.Unmarshal(m.Payload(), &p) == nil && p.Value != nil && strings.HasPrefix(m.Topic(), "sensors/dev-") {
			got.Add(1)
		}
	})
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}

	var stderr bytes.Buffer
	code := run([]string{"--mqtt", mq.URL(), "--devices", "3", "--count", "3000", "--spike-every", "200"}, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	var spikes, summaries int
	var summarySpikes any
	sc := bufio.NewScanner(&stderr)
	for sc.Scan() {
		var l map[string]any
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("stderr line %q is not JSON", sc.Text())
		}
		switch l["msg"] {
		case "spike":
			spikes++
			if l["device"] == nil || l["sensor"] == nil || l["ts"] == nil {
				t.Fatalf("spike record without device, sensor or ts: %v", l)
			}
		case "summary":
			summaries++
			summarySpikes = l["spikes"]
			if l["published"] != 3000.0 || l["failed"] != 0.0 || l["msgs_per_second"] == nil || l["elapsed"] == nil {
				t.Fatalf("summary %v", l)
			}
		}
	}
	// About 1000 readings per device (--count is shared, so devices may get
	// somewhat more or fewer), a spike every 200 of a device's readings.
	if summaries != 1 || summarySpikes != float64(spikes) || spikes < 10 || spikes > 15 {
		t.Fatalf("%d summaries, %d spikes:\n%s", summaries, spikes, stderr.String())
	}
	deadline := time.Now().Add(10 * time.Second)
	for got.Load() < 3000 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got.Load() != 3000 {
		t.Fatalf("subscriber got %d readings, want 3000", got.Load())
	}
}
