package agent

import "github.com/outpost-iot/outpost/shared/profile"

// Overrides are command-line settings that take precedence over the profile.
// Empty fields leave the profile alone.
type Overrides struct {
	// AgentID sets agent.id.
	AgentID string
	// NATS sets nats.url.
	NATS string
	// MQTT sets mqtt.url and switches to that external broker.
	MQTT string
	// MQTTListen sets mqtt.embedded.listen and switches to the embedded broker.
	MQTTListen string
	// DataDir sets data_dir.
	DataDir string
	// MetricsListen sets metrics.listen.
	MetricsListen string
}

// Apply returns p with the overrides applied. The MQTT client id is
// recomputed from a new agent id unless the profile set one.
func (o Overrides) Apply(p profile.Profile) profile.Profile {
	if o.AgentID != "" {
		p.Agent.ID = o.AgentID
	}
	if o.NATS != "" {
		p.NATS.URL = o.NATS
	}
	if o.MQTT != "" {
		p.MQTT.URL = o.MQTT
		p.MQTT.Embedded = nil
	}
	if o.MQTTListen != "" {
		e := profile.Embedded{}
		if p.MQTT.Embedded != nil {
			e = *p.MQTT.Embedded
		}
		e.Listen = o.MQTTListen
		p.MQTT.Embedded = &e
		p.MQTT.URL = ""
	}
	if o.DataDir != "" {
		p.DataDir = o.DataDir
	}
	if o.MetricsListen != "" {
		p.Metrics.Listen = o.MetricsListen
	}
	return p
}
