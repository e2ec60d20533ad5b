package api

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/micro"
	"github.com/outpost-iot/outpost/shared/wire"
)

// Rollout endpoints, relative to names.APIPrefix.
//
//	rollouts.start    request: RolloutStartRequest  reply: Rollout
//	rollouts.list     request: empty                reply: []Rollout (newest first, without agents)
//	rollouts.status   request: RolloutRef           reply: Rollout (with agents; no id: the newest)
//	rollouts.abort    request: RolloutRef           reply: Rollout
//	rollouts.rollback request: RolloutRef           reply: Rollout
const (
	EndpointRolloutsStart    = "rollouts.start"
	EndpointRolloutsList     = "rollouts.list"
	EndpointRolloutsStatus   = "rollouts.status"
	EndpointRolloutsAbort    = "rollouts.abort"
	EndpointRolloutsRollback = "rollouts.rollback"
	// EndpointConfigsPush validates and stores a firmware profile and rolls
	// it out: request ConfigPushRequest, reply Rollout.
	EndpointConfigsPush = "configs.push"
)

// Rollout kinds.
const (
	KindModel  = "model"
	KindConfig = "config"
)

// ConfigPushRequest pushes a firmware profile (YAML) and rolls it out to
// the agents To selects, as a model rollout does (Model and Stream are not
// used). The profile must name itself (name:) and carry a revision greater
// than any stored for that name; it is validated with the same code as
// `outpost-edge validate`.
type ConfigPushRequest struct {
	Profile string `json:"profile"`
	RolloutStartRequest
}

// RolloutStartRequest starts a model rollout.
type RolloutStartRequest struct {
	// Model is the model to roll out, "name@version"; it must be stored.
	Model string `json:"model"`
	// To selects the agents: "all", "group=G" (State.Group) or "device=D".
	To string `json:"to"`
	// Canary is how many of the agents go first: a count ("2") or a share
	// ("10%", rounded up). Empty means 1 when there are two agents or more;
	// "0" means no canary.
	Canary string `json:"canary,omitempty"`
	// Bake is how long the canaries must stay healthy on the new model
	// before the rest follow; 0 means the swap alone is the gate.
	Bake wire.Duration `json:"bake,omitempty"`
	// Stream is the stream or stream pattern the model is for, the key in
	// wire.Desired.Models; default "*" (every stream).
	Stream string `json:"stream,omitempty"`
	// SwapTimeout is how long an agent has to report the new model; 0
	// means 2 minutes.
	SwapTimeout wire.Duration `json:"swap_timeout,omitempty"`
	// BatchSize is how many agents after the canaries are given the model
	// at once; 0 means a quarter of them (rounded up).
	BatchSize int `json:"batch_size,omitempty"`
}

// RolloutRef names a rollout.
type RolloutRef struct {
	ID string `json:"id"`
}

// Rollout states.
const (
	RolloutCanary      = "canary"       // canaries are being given the model
	RolloutBaking      = "baking"       // canaries run it; their health is watched for Bake
	RolloutRolling     = "rolling"      // the rest, in batches
	RolloutSucceeded   = "succeeded"    // every online target runs the model
	RolloutAborted     = "aborted"      // stopped by the operator; agents left where they were
	RolloutRollingBack = "rolling_back" // restoring the previous desired state
	RolloutRolledBack  = "rolled_back"  // restored (Reason says why)
)

// Agent phases in a rollout.
const (
	PhasePending    = "pending"     // not given the model yet
	PhaseDesired    = "desired"     // its desired state names the model
	PhaseRunning    = "running"     // it reports running the model
	PhaseFailed     = "failed"      // it did not swap, reported an error or regressed
	PhaseRolledBack = "rolled_back" // its previous desired state was restored
	PhaseSkipped    = "skipped"     // offline when the rollout started; left alone
)

// Rollout is a rollout as stored in the KV bucket names.BucketRollouts
// (key = ID) and as the API returns it.
type Rollout struct {
	ID string `json:"id"`
	// Kind is KindModel or KindConfig.
	Kind string `json:"kind"`
	// Model is what a model rollout gives, "name@version".
	Model string `json:"model,omitempty"`
	// Config is what a config rollout gives, "name@revision" (the profile
	// stored under names.ConfigKey(name, revision)).
	Config string `json:"config,omitempty"`
	To     string `json:"to"`
	Stream string `json:"stream,omitempty"`
	// State is one of the Rollout* states; Reason says why it failed,
	// was aborted or rolled back.
	State  string `json:"state"`
	Reason string `json:"reason,omitempty"`
	// Canaries is how many agents went first.
	Canaries    int           `json:"canaries"`
	Bake        wire.Duration `json:"bake"`
	SwapTimeout wire.Duration `json:"swap_timeout"`
	BatchSize   int           `json:"batch_size"`
	// BakeUntil is when the canaries' bake ends (state baking).
	BakeUntil time.Time `json:"bake_until,omitempty"`
	Created   time.Time `json:"created"`
	Updated   time.Time `json:"updated"`
	Finished  time.Time `json:"finished,omitempty"`
	// Counts is the number of agents per phase.
	Counts map[string]int `json:"counts"`
	// Agents are the targets, canaries first; rollouts.list leaves them out.
	Agents []RolloutAgent `json:"agents,omitempty"`
	// Request is an operator request ("abort", "rollback") the driving
	// replica has not applied yet.
	Request string `json:"request,omitempty"`
	// Driver is the replica that drives the rollout, until Lease.
	Driver string    `json:"driver,omitempty"`
	Lease  time.Time `json:"lease,omitempty"`
}

// Terminal reports whether the rollout has ended (it may still be rolled
// back).
func (r *Rollout) Terminal() bool {
	switch r.State {
	case RolloutSucceeded, RolloutAborted, RolloutRolledBack:
		return true
	}
	return false
}

// Counters are an agent's cumulative counters from its State.
type Counters struct {
	Readings     uint64 `json:"readings"`
	Anomalies    uint64 `json:"anomalies"`
	DecodeErrors uint64 `json:"decode_errors"`
}

// RolloutAgent is one target of a rollout.
type RolloutAgent struct {
	ID     string `json:"id"`
	Phase  string `json:"phase"`
	Canary bool   `json:"canary,omitempty"`
	// Previous is the model its desired state named for the stream before
	// the rollout ("" when none); a rollback restores it.
	Previous string `json:"previous,omitempty"`
	// Error says why the agent failed or could not be restored.
	Error string `json:"error,omitempty"`
	// Since is when the agent entered its phase.
	Since time.Time `json:"since"`
	// Before are its counters when the rollout started, AtSwap when it
	// reported the new model; BeforeError its LastError at the start.
	Before      Counters `json:"before"`
	AtSwap      Counters `json:"at_swap,omitempty"`
	BeforeError string   `json:"before_error,omitempty"`
}

// RolloutManager serves the rollouts.* endpoints (cloud/internal/rollout).
type RolloutManager interface {
	StartRollout(ctx context.Context, req RolloutStartRequest) (Rollout, error)
	ListRollouts(ctx context.Context) ([]Rollout, error)
	RolloutStatus(ctx context.Context, id string) (Rollout, error)
	AbortRollout(ctx context.Context, id string) (Rollout, error)
	RollbackRollout(ctx context.Context, id string) (Rollout, error)
	PushConfig(ctx context.Context, req ConfigPushRequest) (Rollout, error)
}

// What is what the rollout gives: the model, or "config name@revision".
func (r *Rollout) What() string {
	if r.Kind == KindConfig {
		return "config " + r.Config
	}
	return r.Model
}

type rolloutHandlers struct {
	m       RolloutManager
	timeout time.Duration
}

func (h *rolloutHandlers) endpoints() map[string]func(micro.Request) error {
	return map[string]func(micro.Request) error{
		EndpointRolloutsStart: func(req micro.Request) error {
			var r RolloutStartRequest
			if err := json.Unmarshal(req.Data(), &r); err != nil {
				return &BadRequestError{fmt.Errorf("rollouts.start: request must be JSON like {\"model\":\"vib@2\",\"to\":\"all\",\"canary\":\"1\",\"bake\":\"1m\"}: %w", err)}
			}
			ctx, cancel := context.WithTimeout(context.Background(), h.timeout)
			defer cancel()
			out, err := h.m.StartRollout(ctx, r)
			if err != nil {
				return err
			}
			return req.RespondJSON(out)
		},
		EndpointRolloutsList: func(req micro.Request) error {
			ctx, cancel := context.WithTimeout(context.Background(), h.timeout)
			defer cancel()
			out, err := h.m.ListRollouts(ctx)
			if err != nil {
				return err
			}
			if out == nil {
				out = []Rollout{}
			}
			return req.RespondJSON(out)
		},
		EndpointConfigsPush: func(req micro.Request) error {
			var r ConfigPushRequest
			if err := json.Unmarshal(req.Data(), &r); err != nil {
				return &BadRequestError{fmt.Errorf("configs.push: request must be JSON like {\"profile\":\"name: ...\",\"to\":\"all\"}: %w", err)}
			}
			ctx, cancel := context.WithTimeout(context.Background(), h.timeout)
			defer cancel()
			out, err := h.m.PushConfig(ctx, r)
			if err != nil {
				return err
			}
			return req.RespondJSON(out)
		},
		EndpointRolloutsStatus:   h.ref(EndpointRolloutsStatus, h.m.RolloutStatus),
		EndpointRolloutsAbort:    h.ref(EndpointRolloutsAbort, h.m.AbortRollout),
		EndpointRolloutsRollback: h.ref(EndpointRolloutsRollback, h.m.RollbackRollout),
	}
}

func (h *rolloutHandlers) ref(endpoint string, fn func(context.Context, string) (Rollout, error)) func(micro.Request) error {
	return func(req micro.Request) error {
		var r RolloutRef
		if data := req.Data(); len(data) > 0 {
			if err := json.Unmarshal(data, &r); err != nil {
				return &BadRequestError{fmt.Errorf("%s: request must be JSON like {\"id\":\"ro-...\"}: %w", endpoint, err)}
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), h.timeout)
		defer cancel()
		out, err := fn(ctx, r.ID)
		if err != nil {
			return err
		}
		return req.RespondJSON(out)
	}
}

// StartRollout starts a rollout.
func (c *Client) StartRollout(ctx context.Context, req RolloutStartRequest) (Rollout, error) {
	var out Rollout
	body, err := json.Marshal(req)
	if err != nil {
		return out, fmt.Errorf("api: encode rollouts.start request: %w", err)
	}
	return out, c.call(ctx, EndpointRolloutsStart, body, &out)
}

// PushConfig validates, stores and rolls out a firmware profile.
func (c *Client) PushConfig(ctx context.Context, req ConfigPushRequest) (Rollout, error) {
	var out Rollout
	body, err := json.Marshal(req)
	if err != nil {
		return out, fmt.Errorf("api: encode configs.push request: %w", err)
	}
	return out, c.call(ctx, EndpointConfigsPush, body, &out)
}

// Rollouts lists the rollouts, newest first, without their agents.
func (c *Client) Rollouts(ctx context.Context) ([]Rollout, error) {
	var out []Rollout
	return out, c.call(ctx, EndpointRolloutsList, nil, &out)
}

// RolloutStatus returns rollout id with its agents; an empty id means the
// newest rollout.
func (c *Client) RolloutStatus(ctx context.Context, id string) (Rollout, error) {
	return c.rolloutCall(ctx, EndpointRolloutsStatus, id)
}

// AbortRollout stops rollout id, leaving agents where they are.
func (c *Client) AbortRollout(ctx context.Context, id string) (Rollout, error) {
	return c.rolloutCall(ctx, EndpointRolloutsAbort, id)
}

// RollbackRollout restores the previous desired state of every agent
// rollout id touched.
func (c *Client) RollbackRollout(ctx context.Context, id string) (Rollout, error) {
	return c.rolloutCall(ctx, EndpointRolloutsRollback, id)
}

func (c *Client) rolloutCall(ctx context.Context, endpoint, id string) (Rollout, error) {
	var out Rollout
	body, err := json.Marshal(RolloutRef{ID: id})
	if err != nil {
		return out, fmt.Errorf("api: encode %s request: %w", endpoint, err)
	}
	return out, c.call(ctx, endpoint, body, &out)
}
