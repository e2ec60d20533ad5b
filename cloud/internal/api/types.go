// Package api is outpost-cloud's fleet API on NATS request/reply: the JSON
// types it exchanges, the nats.go micro service that serves it under
// names.APIPrefix, and the client the fleet CLI uses.
//
// Endpoints (subject = names.APISubject(endpoint)):
//
//	devices.list  request: empty            reply: []Device
//	events.list   request: EventsQuery JSON reply: []Event (with verdicts)
//	verdicts.list request: EventsQuery JSON reply: []wire.Verdict
//	version       request: empty            reply: VersionInfo
//
// Errors are replied with micro's error headers: Nats-Service-Error-Code
// (an HTTP-like status: "400" for a bad request, "500" for a server fault,
// "503" when a dependency is unavailable) and Nats-Service-Error (a message
// that says what to do).
package api

import (
	"fmt"
	"strings"
	"time"

	"github.com/outpost-iot/outpost/shared/names"
	"github.com/outpost-iot/outpost/shared/wire"
)

// ServiceName is the micro service name.
const ServiceName = "outpost"

// Endpoint subjects, relative to names.APIPrefix.
const (
	EndpointDevicesList = "devices.list"
	EndpointEventsList  = "events.list"
	EndpointVerdicts    = "verdicts.list"
	EndpointVersion     = "version"
)

// Device is one agent in the fleet registry.
type Device struct {
	// ID is the agent id.
	ID string `json:"id"`
	// Online is true when a heartbeat arrived within 3 heartbeat intervals
	// (15s when the agent states none) of now.
	Online bool `json:"online"`
	// LastSeen is when the cloud's JetStream stored the agent's latest state.
	LastSeen time.Time `json:"last_seen"`
	// Heartbeat is the interval the agent says it sends state at.
	Heartbeat wire.Duration `json:"heartbeat"`
	// State is the agent's latest reported state, as it sent it.
	Version  string `json:"version"`
	Profile  string `json:"profile"`
	Revision int64  `json:"revision"`
	// ConfigStatus is "applying" while a pushed profile is on probation on
	// the agent, then "applied" ("" for the installed profile).
	ConfigStatus string            `json:"config_status,omitempty"`
	Group        string            `json:"group,omitempty"`
	Started      time.Time         `json:"started"`
	Models       map[string]string `json:"models,omitempty"`
	Readings     uint64            `json:"readings"`
	Anomalies    uint64            `json:"anomalies"`
	Uncertain    uint64            `json:"uncertain"`
	OutboxDepth  uint64            `json:"outbox_depth"`
	Drops        uint64            `json:"drops"`
	LastError    string            `json:"last_error,omitempty"`
	// DropsByKind splits Drops by what was dropped ("summary",
	// "uncertain", "anomaly"), as the agent reports it.
	DropsByKind map[string]uint64 `json:"drops_by_kind,omitempty"`
	// OutboxBytes is the size of what waits in the agent's outbox.
	OutboxBytes uint64 `json:"outbox_bytes"`
	// DecodeErrors counts payloads the agent could not decode since start.
	DecodeErrors uint64 `json:"decode_errors"`
	// RawBytes and UplinkBytes total, over every summary the cloud accepted
	// from the agent, the raw reading bytes the agent received and the
	// bytes it uplinked: the bandwidth the edge saves.
	RawBytes    uint64 `json:"raw_bytes"`
	UplinkBytes uint64 `json:"uplink_bytes"`
	// Summaries counts the summaries accepted from the agent.
	Summaries uint64 `json:"summaries"`
	// Streams are per-stream totals and the latest interval, from the
	// summaries, sorted by stream.
	Streams []StreamStats `json:"streams,omitempty"`
}

// StreamStats is what the cloud knows of one stream of an agent from its
// summaries.
type StreamStats struct {
	Stream string `json:"stream"`
	// Totals over all accepted summaries.
	Count        uint64 `json:"count"`
	Anomalies    uint64 `json:"anomalies"`
	Uncertain    uint64 `json:"uncertain"`
	Dropped      uint64 `json:"dropped"`
	DecodeErrors uint64 `json:"decode_errors"`
	// Latest is the stream's part of the latest summary that mentioned it.
	Latest wire.StreamSummary `json:"latest"`
	// LatestTo is the end of that summary's interval.
	LatestTo time.Time `json:"latest_to"`
}

// Event is an edge event as the cloud stored it: the wire.Event fields plus
// where and when it landed in JetStream.
type Event struct {
	wire.Event
	// StreamSeq is the event's sequence in the OUTPOST_EVENTS stream.
	StreamSeq uint64 `json:"stream_seq"`
	// Received is when JetStream stored the event.
	Received time.Time `json:"received"`
	// Verdict is the cloud's decision on the event ("confirmed",
	// "rejected"), empty when there is none (yet); only events.list fills
	// it and the three fields below.
	Verdict string `json:"verdict,omitempty"`
	// VerdictScore is the second-stage score of the verdict.
	VerdictScore *float64 `json:"verdict_score,omitempty"`
	// VerdictModel is the second-stage scorer, "name@version".
	VerdictModel string `json:"verdict_model,omitempty"`
	// VerdictReason says why when the verdict was not made by re-scoring.
	VerdictReason string `json:"verdict_reason,omitempty"`
}

// Query defaults and bounds.
const (
	DefaultEventsLimit = 100
	MaxEventsLimit     = 10000
)

// EventsQuery selects events for events.list. Events are returned oldest
// first; when more than Limit match, the newest Limit are returned.
type EventsQuery struct {
	// Agent restricts the result to one agent; empty means all.
	Agent string `json:"agent,omitempty"`
	// Since is a Go duration ("15m", meaning that long before now) or an
	// RFC 3339 time; it is compared with when the event was stored. Empty
	// means from the start of the stream.
	Since string `json:"since,omitempty"`
	// Limit is the maximum number of events; 0 means DefaultEventsLimit.
	Limit int `json:"limit,omitempty"`
}

// Normalize checks q, fills defaults and returns the start time Since
// denotes (zero when Since is empty).
func (q *EventsQuery) Normalize(now time.Time) (time.Time, error) {
	if q.Agent != "" {
		if err := names.ValidAgentID(q.Agent); err != nil {
			return time.Time{}, fmt.Errorf("agent: %w", err)
		}
	}
	switch {
	case q.Limit == 0:
		q.Limit = DefaultEventsLimit
	case q.Limit < 0 || q.Limit > MaxEventsLimit:
		return time.Time{}, fmt.Errorf("limit %d is out of range: use 1 to %d", q.Limit, MaxEventsLimit)
	}
	return ParseSince(q.Since, now)
}

// ParseSince parses a Go duration (before now) or an RFC 3339 time. The
// empty string gives the zero time.
func ParseSince(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return time.Time{}, fmt.Errorf("since %q is negative: give a positive duration like 15m", s)
		}
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("since %q is neither a duration like 15m nor an RFC 3339 time like 2026-01-02T15:04:05Z", s)
	}
	return t, nil
}

// VersionInfo is the reply of the version endpoint.
type VersionInfo struct {
	Service string `json:"service"`
	Version string `json:"version"`
}

// Error is an error reply of the API.
type Error struct {
	// Code is an HTTP-like status code, e.g. "400".
	Code string
	// Message says what went wrong and what to do.
	Message string
}

// Error implements error.
func (e *Error) Error() string { return fmt.Sprintf("%s (code %s)", e.Message, e.Code) }

// Error codes.
const (
	CodeBadRequest  = "400"
	CodeInternal    = "500"
	CodeUnavailable = "503"
)
