package profile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const good = `
name: generic-sensor
revision: 3
agent:
  id: gw-1
  group: lab
  heartbeat: 2s
mqtt:
  embedded:
    listen: 127.0.0.1:1883
  qos: 1
  topics:
    - filter: sensors/+/+
      decoder: json
nats:
  url: nats://127.0.0.1:4222
data_dir: /tmp/outpost
outbox:
  max_bytes: 1048576
streams:
  - match: sensors/+/temp
    window: 60
    scorer: zscore
    low: 3
    high: 5
    cooldown: 30s
    warmup: 40
  - match: "#"
    cooldown: 10
summary_interval: 30s
metrics:
  listen: 127.0.0.1:9108
`

func TestParseGood(t *testing.T) {
	p, err := Parse([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.ValidateForRun(); err != nil {
		t.Fatal(err)
	}
	d := p.Defaults()
	if d.Agent.ID != "gw-1" || d.Agent.Heartbeat != 2*time.Second || d.MQTT.Embedded.Listen != "127.0.0.1:1883" {
		t.Fatalf("agent/mqtt not read: %+v", d)
	}
	if d.MQTT.ClientID != "outpost-edge-gw-1" {
		t.Errorf("client id = %q", d.MQTT.ClientID)
	}
	s := d.StreamFor("sensors/a/temp")
	if s.Window != 60 || s.Low != 3 || s.High != 5 || s.Cooldown.Duration != 30*time.Second || s.Warmup != 40 {
		t.Errorf("stream 0 = %+v", s)
	}
	s = d.StreamFor("sensors/a/hum")
	if s.Window != DefaultWindow || s.Cooldown.Readings != 10 || s.Warmup != DefaultWindow || s.Low != DefaultLow {
		t.Errorf("stream 1 = %+v", s)
	}
	if p.Line("streams[0].window") != 22 {
		t.Errorf("line of streams[0].window = %d, want 22", p.Line("streams[0].window"))
	}
}

func TestDefaultsZeroValue(t *testing.T) {
	d := Profile{}.Defaults()
	if d.Agent.Heartbeat != DefaultHeartbeat || *d.MQTT.QoS != 1 || d.NATS.URL != DefaultNATSURL ||
		d.Outbox.MaxBytes != DefaultOutboxMaxBytes || len(d.Streams) != 1 || d.Streams[0].Match != "#" ||
		d.MQTT.Topics[0].Decoder != "json" || d.SummaryInterval != DefaultSummaryInterval || d.CheckpointInterval != DefaultCheckpointInterval || d.DataDir == "" {
		t.Fatalf("defaults not filled: %+v", d)
	}
	// Defaults must not alias the original's slices.
	p := Profile{Streams: []Stream{{Match: "a/#"}}}
	_ = p.Defaults()
	if p.Streams[0].Window != 0 {
		t.Fatal("Defaults modified its receiver")
	}
}

func TestBrokenProfiles(t *testing.T) {
	base := "mqtt:\n  url: tcp://127.0.0.1:1883\n"
	cases := []struct {
		name string
		yaml string
		want []string // each must appear in some problem
		line int      // line of the first wanted problem, if non-zero
	}{
		{"window negative", base + "streams:\n  - window: -1\n", []string{"streams[0].window: must be > 0"}, 4},
		{"window one", base + "streams:\n  - match: a/#\n  - window: 1\n", []string{"streams[1].window: must be between 2"}, 5},
		{"neither broker", "nats:\n  url: nats://x:1\n", []string{"mqtt: set exactly one of url or embedded"}, 0},
		{"both brokers", base + "  embedded:\n    listen: 127.0.0.1:1\n", []string{"mqtt: set exactly one of url or embedded"}, 1},
		{"agent id space", base + "agent:\n  id: \"a b\"\n", []string{`agent.id: "a b": character ' ' at 1 is not allowed`}, 4},
		{"agent group", base + "agent:\n  group: x.y\n", []string{"agent.group:"}, 0},
		{"heartbeat negative", base + "agent:\n  heartbeat: -1s\n", []string{"agent.heartbeat: must be > 0"}, 4},
		{"unknown top key", base + "colour: red\n", []string{"colour: unknown key"}, 3},
		{"unknown nested key", base + "  embeded: {}\n", []string{"mqtt.embeded: unknown key"}, 3},
		{"unknown stream key", base + "streams:\n  - window: 5\n    treshold: 3\n", []string{"streams[0].treshold: unknown key"}, 5},
		{"unknown topic key", base + "  topics:\n    - filter: a/b\n      decode: json\n", []string{"mqtt.topics[0].decode: unknown key"}, 5},
		{"bad mqtt scheme", "mqtt:\n  url: http://x:1\n", []string{"mqtt.url: URL \"http://x:1\": scheme"}, 2},
		{"bad nats url", base + "nats:\n  url: foo\n", []string{"nats.url:"}, 4},
		{"bad embedded listen", "mqtt:\n  embedded:\n    listen: nope\n", []string{"mqtt.embedded.listen: address \"nope\""}, 3},
		{"password without user", "mqtt:\n  embedded:\n    password: x\n", []string{"mqtt.embedded.username: required"}, 0},
		{"qos 2", base + "  qos: 2\n", []string{"mqtt.qos: must be 0 or 1"}, 3},
		{"bad filter", base + "  topics:\n    - filter: a/#/b\n", []string{"mqtt.topics[0].filter: topic filter \"a/#/b\""}, 4},
		{"unknown decoder", base + "  topics:\n    - filter: a/b\n      decoder: xml\n", []string{"mqtt.topics[0].decoder: unknown decoder \"xml\""}, 5},
		{"bad match", base + "streams:\n  - match: a+/b\n", []string{"streams[0].match: topic filter"}, 4},
		{"unknown scorer", base + "streams:\n  - scorer: magic\n", []string{"streams[0].scorer: unknown scorer \"magic\""}, 4},
		{"high below low", base + "streams:\n  - low: 5\n    high: 3\n", []string{"streams[0].high: must be greater than low"}, 5},
		{"negative low", base + "streams:\n  - low: -1\n    high: 3\n", []string{"streams[0].low: must be >= 0"}, 4},
		{"negative cooldown", base + "streams:\n  - cooldown: -5\n", []string{"streams[0].cooldown: must not be negative"}, 4},
		{"bad cooldown", base + "streams:\n  - cooldown: soon\n", []string{"streams[0].cooldown: cooldown \"soon\""}, 4},
		{"negative warmup", base + "streams:\n  - warmup: -3\n", []string{"streams[0].warmup: must be >= 0"}, 4},
		{"outbox small", base + "outbox:\n  max_bytes: 10\n", []string{"outbox.max_bytes: must be at least 65536"}, 4},
		{"summary negative", base + "summary_interval: -1m\n", []string{"summary_interval: must be > 0"}, 3},
		{"checkpoint too often", base + "checkpoint_interval: 10ms\n", []string{"checkpoint_interval: must be between 100ms and 1h, got 10ms"}, 3},
		{"checkpoint too rare", base + "checkpoint_interval: 2h\n", []string{"checkpoint_interval: must be between 100ms and 1h, got 2h0m0s"}, 3},
		{"metrics listen", base + "metrics:\n  listen: localhost\n", []string{"metrics.listen: address"}, 4},
		{"window wrong type", base + "streams:\n  - window: big\n", []string{"streams[0].window: cannot unmarshal"}, 4},
		{"heartbeat wrong type", base + "agent:\n  heartbeat: often\n", []string{"agent.heartbeat:"}, 4},
		{"unknown key and bad value", base + "colour: red\nstreams:\n  - window: -1\n", []string{"colour: unknown key", "streams[0].window: must be > 0"}, 3},
		{"many at once", "agent:\n  id: \"a b\"\nstreams:\n  - window: -1\n  - high: -2\n", []string{
			"agent.id:", "mqtt: set exactly one", "streams[0].window: must be > 0", "streams[1].high: must be greater than low",
		}, 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := Check([]byte(c.yaml))
			if err == nil {
				t.Fatalf("no error for\n%s", c.yaml)
			}
			ps := AsProblems(err)
			if ps == nil {
				t.Fatalf("error is not Problems: %v", err)
			}
			for i, w := range c.want {
				found := false
				for _, pr := range ps {
					if strings.Contains(pr.String(), w) {
						found = true
						if i == 0 && c.line != 0 && pr.Line != c.line {
							t.Errorf("problem %q at line %d, want %d", pr, pr.Line, c.line)
						}
					}
				}
				if !found {
					t.Errorf("want a problem containing %q, got:\n%v", w, err)
				}
			}
			if len(ps) < len(c.want) {
				t.Errorf("got %d problems, want at least %d: %v", len(ps), len(c.want), err)
			}
		})
	}
}

func TestValidateForRunNeedsAgentID(t *testing.T) {
	p, err := Parse([]byte("mqtt:\n  url: tcp://127.0.0.1:1883\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Validate(); err != nil {
		t.Fatalf("class profile without agent id should validate: %v", err)
	}
	err = p.ValidateForRun()
	if err == nil || !strings.Contains(err.Error(), "agent.id: required") {
		t.Fatalf("ValidateForRun = %v, want agent.id required", err)
	}
}

func TestLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.yaml")
	if err := os.WriteFile(path, []byte(good), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path + ".missing"); err == nil {
		t.Fatal("Load of a missing file succeeded")
	}
	if _, err := Parse([]byte("a: [")); err == nil {
		t.Fatal("Parse of bad YAML succeeded")
	}
}

func TestMatchFilter(t *testing.T) {
	for _, c := range []struct {
		f, topic string
		want     bool
	}{
		{"#", "a/b", true}, {"sensors/+/+", "sensors/a/b", true}, {"sensors/+/+", "sensors/a/b/c", false},
		{"sensors/+/temp", "sensors/a/temp", true}, {"sensors/+/temp", "sensors/a/hum", false},
		{"sensors/#", "sensors", true}, {"a/b", "a/b", true}, {"a/b", "a", false},
	} {
		if got := MatchFilter(c.f, c.topic); got != c.want {
			t.Errorf("MatchFilter(%q, %q) = %v", c.f, c.topic, got)
		}
	}
}
