// Package alerts sends confirmed anomalies to alert sinks. The webhook sink
// is a durable consumer (ConsumerName, shared by the replicas) on
// OUTPOST_VERDICTS: for every confirmed verdict it POSTs the JSON Alert
// (the event and its verdict) to the configured URL, retrying with
// exponential backoff (Config.Backoff, doubling up to Config.MaxBackoff)
// until the server answers 2xx or Config.MaxAttempts attempts failed; then
// the alert is a dead letter, kept in the KV bucket names.BucketAlertsDead
// under "<agent>.<seq>" and counted. Rejected verdicts are acknowledged and
// skipped. Delivery is at least once: a replica that dies mid-retry leaves
// the verdict to be redelivered.
package alerts

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/outpost-iot/outpost/cloud/internal/metrics"
	"github.com/outpost-iot/outpost/cloud/internal/verdicts"
	"github.com/outpost-iot/outpost/shared/names"
	"github.com/outpost-iot/outpost/shared/wire"
)

// ConsumerName is the webhook sink's durable consumer.
const ConsumerName = "outpost-cloud-alerts-webhook"

// Defaults.
const (
	DefaultMaxAttempts = 5
	DefaultBackoff     = 500 * time.Millisecond
	DefaultMaxBackoff  = 30 * time.Second
	DefaultTimeout     = 5 * time.Second
	DefaultConcurrency = 4
)

// Alert is the webhook's JSON body.
type Alert struct {
	Event   *wire.Event  `json:"event,omitempty"`
	Verdict wire.Verdict `json:"verdict"`
}

// DeadLetter is what the dead-letter bucket keeps per alert.
type DeadLetter struct {
	Alert
	URL       string    `json:"url"`
	Attempts  int       `json:"attempts"`
	LastError string    `json:"last_error"`
	Failed    time.Time `json:"failed"`
}

// Config configures the webhook sink. URL and Metrics are required.
type Config struct {
	// URL receives the POSTs.
	URL string
	// MaxAttempts is how many POSTs are tried before dead-lettering.
	// Default DefaultMaxAttempts.
	MaxAttempts int
	// Backoff is the wait after the first failure, doubled after each
	// further one up to MaxBackoff. Defaults DefaultBackoff and
	// DefaultMaxBackoff.
	Backoff, MaxBackoff time.Duration
	// Timeout bounds one POST. Default DefaultTimeout.
	Timeout time.Duration
	// Concurrency is how many alerts are in delivery at once. Default
	// DefaultConcurrency.
	Concurrency int
	// Client; default a client with Timeout.
	Client  *http.Client
	Metrics *metrics.Metrics
	Logger  *slog.Logger
}

// Webhook is the running webhook sink.
type Webhook struct {
	cfg    Config
	events jetstream.Stream
	dead   jetstream.KeyValue
	cc     jetstream.ConsumeContext
	sem    chan struct{}
	wg     sync.WaitGroup
	ctx    context.Context
	cancel context.CancelFunc
}

// StartWebhook starts the webhook sink on js.
func StartWebhook(ctx context.Context, js jetstream.JetStream, cfg Config) (*Webhook, error) {
	if cfg.URL == "" {
		return nil, fmt.Errorf("alerts: webhook URL is empty")
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = DefaultBackoff
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: cfg.Timeout}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	w := &Webhook{cfg: cfg, sem: make(chan struct{}, cfg.Concurrency)}
	var err error
	if w.events, err = js.Stream(ctx, names.StreamEvents); err != nil {
		return nil, fmt.Errorf("alerts: stream %s: %w", names.StreamEvents, err)
	}
	if w.dead, err = js.KeyValue(ctx, names.BucketAlertsDead); err != nil {
		return nil, fmt.Errorf("alerts: KV bucket %s: %w", names.BucketAlertsDead, err)
	}
	// Long enough for every retry of one alert; InProgress extends it too.
	ackWait := 2*cfg.MaxBackoff + time.Duration(cfg.MaxAttempts)*cfg.Timeout
	cons, err := js.CreateOrUpdateConsumer(ctx, names.StreamVerdicts, jetstream.ConsumerConfig{
		Durable:       ConsumerName,
		Description:   "outpost-cloud: confirmed anomalies to the webhook",
		FilterSubject: names.VerdictsAll,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       ackWait,
		MaxAckPending: 1000,
		DeliverPolicy: jetstream.DeliverNewPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("alerts: consumer %s: %w", ConsumerName, err)
	}
	w.ctx, w.cancel = context.WithCancel(context.Background())
	w.cc, err = cons.Consume(w.handle, jetstream.PullMaxMessages(2*cfg.Concurrency),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			cfg.Logger.Debug("alerts consumer", "err", err)
		}))
	if err != nil {
		w.cancel()
		return nil, fmt.Errorf("alerts: consume: %w", err)
	}
	return w, nil
}

// Stop stops taking verdicts, waits for deliveries under way (their
// retries are cut short; unfinished ones are redelivered later), and
// returns.
func (w *Webhook) Stop() {
	if w.cc == nil {
		return
	}
	w.cancel()
	w.cc.Stop()
	<-w.cc.Closed()
	w.wg.Wait()
	w.cc = nil
}

func (w *Webhook) handle(msg jetstream.Msg) {
	var v wire.Verdict
	if err := json.Unmarshal(msg.Data(), &v); err != nil {
		w.cfg.Logger.Warn("alerts: undecodable verdict", "subject", msg.Subject(), "err", err)
		_ = msg.Term()
		return
	}
	if v.Decision != wire.Confirmed {
		_ = msg.Ack()
		return
	}
	if w.ctx.Err() != nil {
		_ = msg.Nak()
		return
	}
	w.sem <- struct{}{}
	w.wg.Add(1)
	go func() {
		defer func() { <-w.sem; w.wg.Done() }()
		w.deliver(msg, v)
	}()
}

func (w *Webhook) deliver(msg jetstream.Msg, v wire.Verdict) {
	alert := Alert{Verdict: v}
	if seq, err := strconv.ParseUint(msg.Headers().Get(verdicts.EventSeqHeader), 10, 64); err == nil {
		if raw, err := w.events.GetMsg(w.ctx, seq); err == nil {
			var ev wire.Event
			if json.Unmarshal(raw.Data, &ev) == nil {
				alert.Event = &ev
			}
		}
	}
	body, err := json.Marshal(alert)
	if err != nil {
		_ = msg.Term()
		return
	}
	var lastErr error
	wait := w.cfg.Backoff
	for attempt := 1; attempt <= w.cfg.MaxAttempts; attempt++ {
		lastErr = w.post(body)
		if lastErr == nil {
			w.cfg.Metrics.AlertAttempts.WithLabelValues("ok").Inc()
			w.cfg.Metrics.AlertsDelivered.Inc()
			_ = msg.Ack()
			return
		}
		w.cfg.Metrics.AlertAttempts.WithLabelValues("error").Inc()
		w.cfg.Logger.Debug("alerts: webhook attempt failed", "agent", v.Agent, "seq", v.Seq, "attempt", attempt, "err", lastErr)
		if attempt == w.cfg.MaxAttempts {
			break
		}
		_ = msg.InProgress()
		select {
		case <-w.ctx.Done():
			_ = msg.Nak() // stopped: another replica (or the next start) delivers it
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, w.cfg.MaxBackoff)
	}
	dl := DeadLetter{Alert: alert, URL: w.cfg.URL, Attempts: w.cfg.MaxAttempts, LastError: lastErr.Error(), Failed: time.Now().UTC()}
	data, _ := json.Marshal(dl)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := w.dead.Put(ctx, v.Agent+"."+strconv.FormatUint(v.Seq, 10), data); err != nil {
		w.cfg.Logger.Warn("alerts: keep dead letter", "agent", v.Agent, "seq", v.Seq, "err", err)
		_ = msg.Nak()
		return
	}
	w.cfg.Metrics.AlertsDeadLettered.Inc()
	w.cfg.Logger.Warn("alert dead-lettered", "agent", v.Agent, "seq", v.Seq, "attempts", w.cfg.MaxAttempts, "err", lastErr)
	_ = msg.Ack()
}

func (w *Webhook) post(body []byte) error {
	ctx, cancel := context.WithTimeout(w.ctx, w.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := w.cfg.Client.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	if res.StatusCode/100 != 2 {
		return fmt.Errorf("webhook answered %s", res.Status)
	}
	return nil
}

// DeadLetters lists the dead-lettered alerts in js.
func DeadLetters(ctx context.Context, js jetstream.JetStream) ([]DeadLetter, error) {
	kv, err := js.KeyValue(ctx, names.BucketAlertsDead)
	if err != nil {
		return nil, fmt.Errorf("alerts: KV bucket %s: %w", names.BucketAlertsDead, err)
	}
	lister, err := kv.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("alerts: list dead letters: %w", err)
	}
	var out []DeadLetter
	for key := range lister.Keys() {
		e, err := kv.Get(ctx, key)
		if err != nil {
			continue
		}
		var dl DeadLetter
		if json.Unmarshal(e.Value(), &dl) == nil {
			out = append(out, dl)
		}
	}
	return out, nil
}
