package sysbench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// agentProc is a running outpost-edge process.
type agentProc struct {
	cmd     *exec.Cmd
	log     string
	metrics string // host:port of /metrics
}

// startAgent runs bin with profile against mqttURL and natsURL, with its
// data and log in dir, and waits until it has subscribed.
func startAgent(ctx context.Context, bin string, env []string, profile, id, mqttURL, natsURL, dir string) (*agentProc, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	a := &agentProc{log: filepath.Join(dir, "agent.log"), metrics: fmt.Sprintf("127.0.0.1:%d", port)}
	logf, err := os.Create(a.log)
	if err != nil {
		return nil, err
	}
	defer logf.Close() // the child has its own descriptor
	a.cmd = exec.Command(bin, "run", "--config", profile, "--agent-id", id, "--mqtt", mqttURL, "--nats", natsURL,
		"--data", filepath.Join(dir, "data"), "--metrics-listen", a.metrics)
	a.cmd.Stdout, a.cmd.Stderr = logf, logf
	a.cmd.Env = append(os.Environ(), env...)
	if err := a.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	for {
		b, _ := os.ReadFile(a.log)
		if bytes.Contains(b, []byte("mqtt connected and subscribed")) {
			if _, err := scrape(a.metrics); err == nil {
				return a, nil
			}
		}
		select {
		case <-ctx.Done():
			a.Stop()
			return nil, fmt.Errorf("agent not subscribed within 20s; log %s:\n%s", a.log, tail(b, 2000))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (a *agentProc) pid() int { return a.cmd.Process.Pid }

// Stop sends SIGINT (the agent flushes and stops) and waits.
func (a *agentProc) Stop() { stopProcess(a.cmd) }

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// publisher is a running sensorsim.
type publisher struct {
	cmd    *exec.Cmd
	stderr bytes.Buffer
	done   chan error
}

// pubConfig is one sensorsim run.
type pubConfig struct {
	bin, data, mqttURL string
	devices            int
	count              int64
	rate               float64 // 0: as fast as possible
	spikeEvery         int     // readings per device; 0: none
	spikeStagger       bool    // each device its own spike phase
}

// pubResult is sensorsim's summary line.
type pubResult struct {
	Published     int64   `json:"published"`
	Failed        int64   `json:"failed"`
	Spikes        int64   `json:"spikes"`
	MsgsPerSecond float64 `json:"msgs_per_second"`
}

func startPublisher(c pubConfig) (*publisher, error) {
	args := []string{"--mqtt", c.mqttURL, "--data", c.data, "--devices", strconv.Itoa(c.devices), "--loop",
		"--count", strconv.FormatInt(c.count, 10), "--qos", "1", "--client-id", "edgebench-pub"}
	if c.rate > 0 {
		args = append(args, "--rate", strconv.FormatFloat(c.rate, 'f', -1, 64))
	}
	if c.spikeEvery > 0 {
		args = append(args, "--spike-every", strconv.Itoa(c.spikeEvery))
		if c.spikeStagger {
			args = append(args, "--spike-stagger")
		}
	}
	p := &publisher{cmd: exec.Command(c.bin, args...), done: make(chan error, 1)}
	p.cmd.Stderr = &p.stderr
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", c.bin, err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	return p, nil
}

// wait waits for the publisher to finish and returns its summary.
func (p *publisher) wait(ctx context.Context) (pubResult, error) {
	select {
	case err := <-p.done:
		if err != nil {
			return pubResult{}, fmt.Errorf("sensorsim: %w\n%s", err, tail(p.stderr.Bytes(), 2000))
		}
	case <-ctx.Done():
		stopProcess(p.cmd)
		return pubResult{}, fmt.Errorf("sensorsim: %w", ctx.Err())
	}
	sc := bufio.NewScanner(bytes.NewReader(p.stderr.Bytes()))
	for sc.Scan() {
		if !strings.Contains(sc.Text(), `"msg":"summary"`) {
			continue
		}
		var r pubResult
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return r, fmt.Errorf("sensorsim summary: %w", err)
		}
		return r, nil
	}
	return pubResult{}, fmt.Errorf("sensorsim printed no summary:\n%s", tail(p.stderr.Bytes(), 2000))
}

// subscriber is a plain paho client at QoS 1 with a persistent session,
// counting what mosquitto delivers: the broker's own rate.
type subscriber struct {
	c     paho.Client
	n     atomic.Int64
	marks []int64
	at    []atomic.Int64 // unix ns when the count reached marks[i]
}

func startSubscriber(url string, marks ...int64) (*subscriber, error) {
	s := &subscriber{marks: marks, at: make([]atomic.Int64, len(marks))}
	o := paho.NewClientOptions().AddBroker(url).SetClientID("edgebench-sub").SetCleanSession(false).
		SetOrderMatters(true).SetConnectTimeout(10 * time.Second)
	s.c = paho.NewClient(o)
	if t := s.c.Connect(); !t.WaitTimeout(10*time.Second) || t.Error() != nil {
		return nil, fmt.Errorf("subscriber connect %s: %v", url, t.Error())
	}
	t := s.c.Subscribe("sensors/+/+", 1, func(_ paho.Client, _ paho.Message) {
		n := s.n.Add(1)
		for i, m := range s.marks {
			if n == m {
				s.at[i].Store(time.Now().UnixNano())
			}
		}
	})
	if !t.WaitTimeout(10*time.Second) || t.Error() != nil {
		s.c.Disconnect(0)
		return nil, fmt.Errorf("subscribe: %v", t.Error())
	}
	return s, nil
}

// reached returns when the count reached mark i (zero if not yet).
func (s *subscriber) reached(i int) time.Time {
	if ns := s.at[i].Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

func (s *subscriber) Stop() { s.c.Disconnect(100) }
