package vsim

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// Defaults filled in for zero Config fields.
const (
	DefaultMQTTURL  = "tcp://127.0.0.1:1883"
	DefaultCamera   = "cam-1"
	DefaultTopic    = "cameras/{camera}/detections"
	DefaultFPS      = 25
	DefaultInflight = 1000
	DefaultTimeout  = 10 * time.Second
)

// Source yields frames; ok is false when there are no more.
type Source interface {
	Next() (f Frame, ok bool)
}

// Replay is a Source over recorded frames, optionally looping.
type Replay struct {
	Frames []Frame
	Loop   bool
	i      int
}

// Next implements Source.
func (r *Replay) Next() (Frame, bool) {
	if r.i >= len(r.Frames) {
		if !r.Loop || len(r.Frames) == 0 {
			return Frame{}, false
		}
		r.i = 0
	}
	r.i++
	return r.Frames[r.i-1], true
}

// Endless adapts a Synthetic generator to a Source.
type Endless struct{ *Synthetic }

// Next implements Source.
func (e Endless) Next() (Frame, bool) { return e.Synthetic.Next(), true }

// Config is one publishing run.
type Config struct {
	MQTTURL  string // default DefaultMQTTURL
	Username string
	Password string
	ClientID string // default "videosim-<random>"
	// Camera id in the payloads. Default DefaultCamera.
	Camera string
	// Topic template; "{camera}" is replaced by Camera. Default
	// DefaultTopic.
	Topic string
	// FPS is the frame rate: frame i is timed Start + i/FPS and, unless
	// Fast, published then. Default DefaultFPS.
	FPS float64
	// Fast publishes as fast as the broker takes it (times still advance
	// by 1/FPS per frame).
	Fast bool
	// Start is the first frame's time. Default now.
	Start time.Time
	// Count stops after this many frames; 0 = until the source ends.
	Count int
	// QoS0 publishes at QoS 0 instead of 1.
	QoS0 bool
	// Inflight bounds publishes awaiting acknowledgement. Default
	// DefaultInflight.
	Inflight int
	// Timeout for connecting and for the last acknowledgements. Default
	// DefaultTimeout.
	Timeout time.Duration
	// Log gets progress and warnings; default discards.
	Log *slog.Logger
}

// Result is what a run did.
type Result struct {
	Frames, Objects, Failed int
	Bytes                   int64
	Elapsed                 time.Duration
}

func (c Config) withDefaults() Config {
	if c.MQTTURL == "" {
		c.MQTTURL = DefaultMQTTURL
	}
	if c.ClientID == "" {
		var b [4]byte
		rand.Read(b[:])
		c.ClientID = "videosim-" + hex.EncodeToString(b[:])
	}
	if c.Camera == "" {
		c.Camera = DefaultCamera
	}
	if c.Topic == "" {
		c.Topic = DefaultTopic
	}
	if c.FPS == 0 {
		c.FPS = DefaultFPS
	}
	if c.Start.IsZero() {
		c.Start = time.Now()
	}
	if c.Inflight <= 0 {
		c.Inflight = DefaultInflight
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	return c
}

// TopicFor returns the topic for camera.
func (c Config) TopicFor(camera string) string {
	return strings.ReplaceAll(c.Topic, "{camera}", camera)
}

// Validate checks c.
func (c Config) Validate() error {
	c = c.withDefaults()
	switch {
	case c.FPS < 0 || c.FPS > 10000:
		return fmt.Errorf("fps %g must be > 0 and at most 10000", c.FPS)
	case c.Count < 0:
		return fmt.Errorf("count %d must be >= 0", c.Count)
	case strings.ContainsAny(c.TopicFor(c.Camera), "+#") || c.TopicFor(c.Camera) == "":
		return fmt.Errorf("topic %q must be a topic name (no wildcards)", c.TopicFor(c.Camera))
	}
	return nil
}

// Run publishes frames from src until it ends, Count frames were published
// or ctx is done (not an error).
func Run(ctx context.Context, c Config, src Source) (Result, error) {
	if err := c.Validate(); err != nil {
		return Result{}, err
	}
	c = c.withDefaults()
	opts := mqtt.NewClientOptions().AddBroker(c.MQTTURL).SetClientID(c.ClientID).
		SetUsername(c.Username).SetPassword(c.Password).SetConnectTimeout(c.Timeout).
		SetAutoReconnect(true).SetMaxReconnectInterval(2 * time.Second)
	cl := mqtt.NewClient(opts)
	if tok := cl.Connect(); !tok.WaitTimeout(c.Timeout) || tok.Error() != nil {
		err := tok.Error()
		if err == nil {
			err = errors.New("timed out")
		}
		return Result{}, fmt.Errorf("connect %s: %w", c.MQTTURL, err)
	}
	defer cl.Disconnect(250)

	qos := byte(1)
	if c.QoS0 {
		qos = 0
	}
	topic := c.TopicFor(c.Camera)
	var res Result
	var pending []mqtt.Token
	wait := func(tok mqtt.Token) {
		if !tok.WaitTimeout(c.Timeout) || tok.Error() != nil {
			res.Failed++
			c.Log.Warn("publish failed", "err", tok.Error())
		}
	}
	start := time.Now()
	frameDur := time.Duration(float64(time.Second) / c.FPS)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for i := 0; c.Count == 0 || i < c.Count; i++ {
		f, ok := src.Next()
		if !ok {
			break
		}
		if !c.Fast {
			timer.Reset(time.Until(start.Add(time.Duration(i) * frameDur)))
			select {
			case <-ctx.Done():
			case <-timer.C:
			}
		}
		if ctx.Err() != nil {
			break
		}
		p := f.Payload(c.Camera, c.Start.Add(time.Duration(i)*frameDur))
		pending = append(pending, cl.Publish(topic, qos, false, p))
		res.Frames++
		res.Objects += len(f.Objects)
		res.Bytes += int64(len(p))
		if len(pending) >= c.Inflight {
			wait(pending[0])
			pending = pending[1:]
		}
	}
	for _, tok := range pending {
		wait(tok)
	}
	res.Elapsed = time.Since(start)
	return res, nil
}
