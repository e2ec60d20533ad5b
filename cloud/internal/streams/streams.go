// Package streams creates the JetStream streams, key-value bucket and object
// store that Outpost uses, idempotently: Ensure creates what is missing and
// updates what exists, so every replica of outpost-cloud may call it at start.
package streams

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/outpost-iot/outpost/shared/names"
)

// Retention and dedupe settings.
const (
	// DuplicateWindow is how long JetStream remembers Nats-Msg-Ids of events.
	// Duplicates older than this are caught by the cloud's per-agent
	// high-water mark.
	DuplicateWindow = 2 * time.Minute
	// SummaryMaxAge is how long summaries are kept.
	SummaryMaxAge = 24 * time.Hour
	// SampleMaxAge and SampleMaxBytes bound the sampled normal windows
	// kept for the learning loop.
	SampleMaxAge   = 7 * 24 * time.Hour
	SampleMaxBytes = 256 << 20
)

// Configs returns the stream configurations Ensure applies.
func Configs() []jetstream.StreamConfig {
	return []jetstream.StreamConfig{
		{
			Name:        names.StreamEvents,
			Description: "Outpost: anomalies and uncertain windows from edge agents",
			Subjects:    []string{names.EventsAll},
			Storage:     jetstream.FileStorage,
			Duplicates:  DuplicateWindow,
		},
		{
			Name:        names.StreamSummaries,
			Description: "Outpost: per-stream summaries from edge agents",
			Subjects:    []string{names.SummariesAll},
			Storage:     jetstream.FileStorage,
			MaxAge:      SummaryMaxAge,
			Duplicates:  DuplicateWindow,
		},
		{
			Name:              names.StreamState,
			Description:       "Outpost: latest heartbeat and state of each agent",
			Subjects:          []string{names.StateAll},
			Storage:           jetstream.FileStorage,
			MaxMsgsPerSubject: 1,
		},
		{
			Name:        names.StreamVerdicts,
			Description: "Outpost: the cloud's verdicts on forwarded windows",
			Subjects:    []string{names.VerdictsAll},
			Storage:     jetstream.FileStorage,
			Duplicates:  DuplicateWindow,
		},
		{
			Name:        names.StreamSamples,
			Description: "Outpost: sampled normal windows from edge agents, for the learning loop",
			Subjects:    []string{names.SamplesAll},
			Storage:     jetstream.FileStorage,
			MaxAge:      SampleMaxAge,
			MaxBytes:    SampleMaxBytes,
			Discard:     jetstream.DiscardOld,
		},
	}
}

// Ensure creates or updates every stream, the desired-state, high-water-mark
// and dead-letter buckets and the model object store.
func Ensure(ctx context.Context, js jetstream.JetStream) error {
	for _, cfg := range Configs() {
		if _, err := js.CreateOrUpdateStream(ctx, cfg); err != nil {
			return fmt.Errorf("streams: create or update stream %s: %w", cfg.Name, err)
		}
	}
	if _, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      names.BucketDesired,
		Description: "Outpost: desired state per agent",
		History:     5,
		Storage:     jetstream.FileStorage,
	}); err != nil {
		return fmt.Errorf("streams: create or update KV bucket %s: %w", names.BucketDesired, err)
	}
	for _, kv := range []jetstream.KeyValueConfig{
		{Bucket: names.BucketHWM, Description: "Outpost: per-agent high-water marks of outbox sequence numbers, per consumer", History: 1, Storage: jetstream.FileStorage},
		{Bucket: names.BucketAlertsDead, Description: "Outpost: alerts no sink accepted after all retries", History: 1, Storage: jetstream.FileStorage},
		{Bucket: names.BucketModelHistory, Description: "Outpost: learning decisions (drift, challengers, promotions), key = decision id", History: 1, Storage: jetstream.FileStorage},
	} {
		if _, err := js.CreateOrUpdateKeyValue(ctx, kv); err != nil {
			return fmt.Errorf("streams: create or update KV bucket %s: %w", kv.Bucket, err)
		}
	}
	if _, err := js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
		Bucket:      names.ObjectModels,
		Description: "Outpost: signed model packages",
		Storage:     jetstream.FileStorage,
	}); err != nil {
		return fmt.Errorf("streams: create or update object store %s: %w", names.ObjectModels, err)
	}
	return nil
}
