// Package names holds every name that Outpost's edge agents and cloud service
// must agree on over NATS: subjects, streams, key-value buckets, object stores
// and the request/reply API prefix. No other package spells these names.
package names

import (
	"fmt"
	"strings"
)

// Streams.
const (
	// StreamEvents holds anomalies and uncertain windows from the edge.
	StreamEvents = "OUTPOST_EVENTS"
	// StreamSummaries holds per-stream counts and statistics (short retention).
	StreamSummaries = "OUTPOST_SUMMARIES"
	// StreamState holds each agent's latest heartbeat and reported state,
	// one message per subject.
	StreamState = "OUTPOST_STATE"
	// StreamVerdicts holds the cloud's decisions on forwarded windows.
	StreamVerdicts = "OUTPOST_VERDICTS"
	// StreamSamples holds the reservoir samples of normal windows that
	// agents upload within their bandwidth budget (limited retention); the
	// cloud's learning loop reads them.
	StreamSamples = "OUTPOST_SAMPLES"
)

// Buckets and stores.
const (
	// BucketDesired is the KV bucket of desired state, key = agent id.
	BucketDesired = "outpost_desired"
	// ObjectModels is the object store of signed model packages.
	ObjectModels = "outpost_models"
	// BucketHWM is the cloud's KV bucket of per-agent high-water marks of
	// outbox sequence numbers, one key per consumer and agent
	// ("events.<agent>", "summaries.<agent>", "verdicts.<agent>"), updated
	// with compare-and-set so that replicas never accept the same seq twice.
	BucketHWM = "outpost_hwm"
	// BucketAlertsDead is the cloud's KV bucket of alerts that no sink
	// accepted after all retries (dead letters), key "<agent>.<seq>".
	BucketAlertsDead = "outpost_alerts_dead"
	// BucketRollouts is the cloud's KV bucket of rollouts, key = rollout
	// id; every replica can resume one (compare-and-set on the key's
	// revision decides which replica drives it).
	BucketRollouts = "outpost_rollouts"
	// BucketConfigs is the KV bucket of firmware profiles pushed to the
	// fleet, key = ConfigKey(profile name, revision), value = the YAML.
	BucketConfigs = "outpost_configs"
	// BucketModelHistory is the cloud's KV bucket of learning decisions
	// (drift seen, challenger trained and compared, promoted, rejected,
	// awaiting approval, rolled out), key = decision id.
	BucketModelHistory = "outpost_model_history"
	// BucketLeaders is the cloud's KV bucket of leader leases: a key per
	// job that one replica at a time runs (LeaderLearn). Keys expire with
	// the bucket's TTL unless their holder renews them with a
	// revision-checked update.
	BucketLeaders = "outpost_leaders"
	// LeaderLearn is the key in BucketLeaders of the replica that runs
	// the learning loop.
	LeaderLearn = "learn"
)

// Subject wildcards that the cloud binds its streams and consumers to.
const (
	// EventsAll matches the event subject of every agent.
	EventsAll = "outpost.edge.*.event"
	// SummariesAll matches the summary subject of every agent.
	SummariesAll = "outpost.edge.*.summary"
	// StateAll matches the state subject of every agent.
	StateAll = "outpost.edge.*.state"
	// VerdictsAll matches the verdict subject of every agent.
	VerdictsAll = "outpost.cloud.verdict.*"
	// SamplesAll matches the sample subject of every agent.
	SamplesAll = "outpost.edge.*.sample"
	// APIPrefix is the subject prefix of the fleet request/reply API.
	APIPrefix = "outpost.api.v1"
)

// EventSubject is the subject an agent publishes its events on.
func EventSubject(agent string) string { return "outpost.edge." + agent + ".event" }

// SummarySubject is the subject an agent publishes its summaries on.
func SummarySubject(agent string) string { return "outpost.edge." + agent + ".summary" }

// StateSubject is the subject an agent publishes heartbeats and state on.
func StateSubject(agent string) string { return "outpost.edge." + agent + ".state" }

// SampleSubject is the subject an agent publishes its sampled normal
// windows on.
func SampleSubject(agent string) string { return "outpost.edge." + agent + ".sample" }

// VerdictSubject is the subject the cloud publishes verdicts for an agent on.
func VerdictSubject(agent string) string { return "outpost.cloud.verdict." + agent }

// APISubject is the subject of one fleet API endpoint, e.g. "devices.list".
func APISubject(endpoint string) string { return APIPrefix + "." + endpoint }

// ModelObject is the name of model name@version's signed package
// (shared/modelpkg) in the ObjectModels object store: "<name>/<version>".
func ModelObject(name string, version int) string { return fmt.Sprintf("%s/%d", name, version) }

// ConfigKey is the key of revision rev of the profile named name in the
// BucketConfigs KV bucket: "<name>.<rev>".
func ConfigKey(name string, rev int64) string { return fmt.Sprintf("%s.%d", name, rev) }

// MsgID is the JetStream Nats-Msg-Id of the outbox record seq of agent.
func MsgID(agent string, seq uint64) string { return fmt.Sprintf("%s:%d", agent, seq) }

// AgentFromSubject returns the agent id carried in an edge subject
// ("outpost.edge.<agent>.<kind>") or a verdict subject.
func AgentFromSubject(subject string) (string, error) {
	parts := strings.Split(subject, ".")
	switch {
	case len(parts) == 4 && parts[0] == "outpost" && parts[1] == "edge":
		return parts[2], nil
	case len(parts) == 4 && parts[0] == "outpost" && parts[1] == "cloud" && parts[2] == "verdict":
		return parts[3], nil
	}
	return "", fmt.Errorf("names: subject %q carries no agent id", subject)
}

// ValidAgentID reports whether id can be used as an agent id: it becomes one
// token of a NATS subject and a KV key, so it is limited to letters, digits,
// '-' and '_', 1 to 64 characters.
func ValidAgentID(id string) error {
	if id == "" {
		return fmt.Errorf("agent id is empty")
	}
	if len(id) > 64 {
		return fmt.Errorf("agent id %q is longer than 64 characters", id)
	}
	for i, r := range id {
		ok := r == '-' || r == '_' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9')
		if !ok {
			return fmt.Errorf("agent id %q: character %q at %d is not allowed (use letters, digits, '-' and '_')", id, r, i)
		}
	}
	return nil
}
