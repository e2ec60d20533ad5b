package agent

import (
	"testing"

	"github.com/outpost-iot/outpost/shared/profile"
)

func TestOverrides(t *testing.T) {
	base := profile.Profile{MQTT: profile.MQTT{Embedded: &profile.Embedded{Listen: "127.0.0.1:1883", Username: "u"}}}

	p := Overrides{AgentID: "gw-9", NATS: "nats://127.0.0.1:1", MQTT: "tcp://127.0.0.1:2", DataDir: "/tmp/d"}.Apply(base).Defaults()
	if p.Agent.ID != "gw-9" || p.NATS.URL != "nats://127.0.0.1:1" || p.MQTT.URL != "tcp://127.0.0.1:2" || p.MQTT.Embedded != nil || p.DataDir != "/tmp/d" {
		t.Fatalf("--mqtt: %+v", p)
	}
	if p.MQTT.ClientID != "outpost-edge-gw-9" {
		t.Fatalf("client id %q", p.MQTT.ClientID)
	}
	if err := p.ValidateForRun(); err != nil {
		t.Fatal(err)
	}

	ext := profile.Profile{MQTT: profile.MQTT{URL: "tcp://127.0.0.1:1883"}}
	p = Overrides{MQTTListen: "127.0.0.1:0"}.Apply(ext)
	if p.MQTT.URL != "" || p.MQTT.Embedded == nil || p.MQTT.Embedded.Listen != "127.0.0.1:0" {
		t.Fatalf("--mqtt-listen: %+v", p.MQTT)
	}
	p = Overrides{MQTTListen: "127.0.0.1:7"}.Apply(base)
	if p.MQTT.Embedded.Username != "u" || base.MQTT.Embedded.Listen != "127.0.0.1:1883" {
		t.Fatalf("--mqtt-listen must keep the credentials and not modify the original: %+v", p.MQTT.Embedded)
	}
	if got := (Overrides{}).Apply(base); got.MQTT.Embedded != base.MQTT.Embedded {
		t.Fatal("empty overrides changed the profile")
	}
}
