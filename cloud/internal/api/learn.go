package api

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/micro"
)

// Learning-loop endpoints, relative to names.APIPrefix.
//
//	models.history request: ModelHistoryQuery  reply: []ModelDecision (newest first)
//	models.approve request: ModelRef           reply: ModelDecision (the rollout it started)
const (
	EndpointModelsHistory = "models.history"
	EndpointModelsApprove = "models.approve"
)

// Kinds of learning decision (ModelDecision.Kind).
const (
	// DecisionDrift: the drift detector fired on a stream.
	DecisionDrift = "drift"
	// DecisionRejected: a challenger was trained and compared, and was not
	// better than the champion.
	DecisionRejected = "rejected"
	// DecisionAwaitingApproval: a better challenger is signed and stored
	// and waits for `fleet models approve`.
	DecisionAwaitingApproval = "awaiting_approval"
	// DecisionPromoted: a better challenger is signed, stored and being
	// rolled out (Rollout names the rollout).
	DecisionPromoted = "promoted"
	// DecisionFailed: training, export, signing or the rollout start
	// failed (Reason says which).
	DecisionFailed = "failed"
)

// DriftReport says what the drift detector saw.
type DriftReport struct {
	// Test names the test: "ks" (two-sample Kolmogorov-Smirnov) or
	// "page-hinkley" (on summary means).
	Test string `json:"test"`
	// Feature is what was compared: "window_mean", "window_std",
	// "champion_error" or "summary_mean".
	Feature string `json:"feature"`
	// Statistic and Critical: drift when Statistic > Critical.
	Statistic float64 `json:"statistic"`
	Critical  float64 `json:"critical"`
	// Reference and Recent are the sizes of the two samples compared.
	Reference int `json:"reference"`
	Recent    int `json:"recent"`
}

// Comparison is a challenger measured against its champion on the same
// data: held-out recent normal windows (never trained on) and windows the
// cloud rejected are Normal; windows it confirmed are Confirmed. Errors are
// the models' reconstruction (or forecast) errors in normalised units;
// Threshold is the one both are judged at.
type Comparison struct {
	Normal    int     `json:"normal"`
	Confirmed int     `json:"confirmed"`
	Threshold float64 `json:"threshold"`
	// MeanError is the mean error on the normal windows.
	ChampionMeanError   float64 `json:"champion_mean_error"`
	ChallengerMeanError float64 `json:"challenger_mean_error"`
	// FalseAlarms is the share of normal windows whose error is above
	// Threshold.
	ChampionFalseAlarms   float64 `json:"champion_false_alarms"`
	ChallengerFalseAlarms float64 `json:"challenger_false_alarms"`
	// Detected is the share of confirmed windows whose error is above
	// Threshold (1 when there are none).
	ChampionDetected   float64 `json:"champion_detected"`
	ChallengerDetected float64 `json:"challenger_detected"`
	// Better is the verdict, by the rule the learner states.
	Better bool `json:"better"`
}

// ModelDecision is one decision of the learning loop, as kept in the KV
// bucket names.BucketModelHistory (key = ID).
type ModelDecision struct {
	ID   string    `json:"id"`
	Time time.Time `json:"time"`
	// Kind is one of the Decision* kinds.
	Kind string `json:"kind"`
	// Stream is the sensor stream the decision is about; Key the key in
	// the agents' desired models the champion runs under.
	Stream string `json:"stream"`
	Key    string `json:"key,omitempty"`
	// Champion is the model the agents run; Challenger the model trained
	// to replace it, "name@version".
	Champion   string `json:"champion"`
	Challenger string `json:"challenger,omitempty"`
	// Trigger is "drift" or "schedule".
	Trigger string       `json:"trigger,omitempty"`
	Drift   *DriftReport `json:"drift,omitempty"`
	Compare *Comparison  `json:"compare,omitempty"`
	// Training says what the challenger learnt from.
	TrainWindows int     `json:"train_windows,omitempty"`
	Epochs       int     `json:"epochs,omitempty"`
	Loss         float64 `json:"loss,omitempty"`
	// Rollout is the id of the rollout that gives the challenger to the
	// agents.
	Rollout string `json:"rollout,omitempty"`
	// Approved is when an operator approved an awaiting challenger.
	Approved time.Time `json:"approved,omitempty"`
	Reason   string    `json:"reason,omitempty"`
}

// Model is the model a decision is about: the challenger when there is
// one, else the champion.
func (d ModelDecision) Model() string {
	if d.Challenger != "" {
		return d.Challenger
	}
	return d.Champion
}

// ModelHistoryQuery selects decisions: Name restricts them to one model
// name (champion or challenger); Limit bounds them (0: 100).
type ModelHistoryQuery struct {
	Name  string `json:"name,omitempty"`
	Limit int    `json:"limit,omitempty"`
}

// Learner serves models.history and models.approve
// (cloud/internal/learn).
type Learner interface {
	History(ctx context.Context, q ModelHistoryQuery) ([]ModelDecision, error)
	Approve(ctx context.Context, ref ModelRef) (ModelDecision, error)
}

func learnEndpoints(l Learner, timeout time.Duration) map[string]func(micro.Request) error {
	return map[string]func(micro.Request) error{
		EndpointModelsHistory: func(req micro.Request) error {
			var q ModelHistoryQuery
			if data := req.Data(); len(data) > 0 {
				if err := json.Unmarshal(data, &q); err != nil {
					return &BadRequestError{fmt.Errorf("models.history: request must be JSON like {\"name\":\"ae-edge\",\"limit\":50}: %w", err)}
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			out, err := l.History(ctx, q)
			if err != nil {
				return err
			}
			if out == nil {
				out = []ModelDecision{}
			}
			return req.RespondJSON(out)
		},
		EndpointModelsApprove: func(req micro.Request) error {
			var r ModelRef
			if err := json.Unmarshal(req.Data(), &r); err != nil {
				return &BadRequestError{fmt.Errorf("models.approve: request must be JSON like {\"name\":\"ae-edge\",\"version\":2}: %w", err)}
			}
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			d, err := l.Approve(ctx, r)
			if err != nil {
				return err
			}
			return req.RespondJSON(d)
		},
	}
}

// ModelHistory lists learning decisions, newest first.
func (c *Client) ModelHistory(ctx context.Context, q ModelHistoryQuery) ([]ModelDecision, error) {
	body, err := json.Marshal(q)
	if err != nil {
		return nil, err
	}
	var out []ModelDecision
	return out, c.call(ctx, EndpointModelsHistory, body, &out)
}

// ApproveModel approves a challenger awaiting approval and returns the
// decision with the rollout it started.
func (c *Client) ApproveModel(ctx context.Context, ref ModelRef) (ModelDecision, error) {
	body, err := json.Marshal(ref)
	if err != nil {
		return ModelDecision{}, err
	}
	var out ModelDecision
	return out, c.call(ctx, EndpointModelsApprove, body, &out)
}
