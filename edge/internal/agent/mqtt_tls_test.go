package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/edge/internal/edgetest"
	"github.com/outpost-iot/outpost/shared/names"
	"github.com/outpost-iot/outpost/shared/profile"
	"github.com/outpost-iot/outpost/shared/testenv"
	"github.com/outpost-iot/outpost/shared/wire"
)

// connectLog counts the agent's "mqtt connect failed" logs whose error
// contains want.
type connectLog struct {
	want string
	mu   sync.Mutex
	n    int
	last string
}

func (l *connectLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *connectLog) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *connectLog) WithGroup(string) slog.Handler            { return l }
func (l *connectLog) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "mqtt connect failed" {
		return nil
	}
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "err" && strings.Contains(a.Value.String(), l.want) {
			l.mu.Lock()
			l.n++
			l.last = a.Value.String()
			l.mu.Unlock()
		}
		return true
	})
	return nil
}

func (l *connectLog) count() (int, string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n, l.last
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestAgentMQTTTLS: a gateway's profile names a private CA and a client
// certificate (mqtt.tls) for a mosquitto that requires one. While the
// broker presents a certificate of another CA the agent logs why it
// cannot connect, keeps running and retries; once the broker has its
// proper certificate (restarted), the agent connects and a spike becomes
// an event in JetStream.
func TestAgentMQTTTLS(t *testing.T) {
	srv := testenv.StartNATS(t)
	js := edgetest.CreateStreams(t, srv.URL())
	pki, other := testenv.NewPKI(t), testenv.NewPKI(t)
	dir := t.TempDir()
	serverCert, serverKey := filepath.Join(dir, "server.pem"), filepath.Join(dir, "server.key")
	copyFile(t, other.ServerCert, serverCert) // the wrong CA's, at first
	copyFile(t, other.ServerKey, serverKey)
	port := testenv.FreePort(t)
	mq := testenv.StartMosquitto(t, fmt.Sprintf("listener %d 127.0.0.1", port),
		"cafile "+pki.CAFile, "certfile "+serverCert, "keyfile "+serverKey, "require_certificate true")

	p := testProfile(t, srv.URL())
	p.MQTT.URL = fmt.Sprintf("mqtts://127.0.0.1:%d", port)
	p.MQTT.KeepAlive = 5 * time.Second
	p.MQTT.TLS = &profile.MQTTTLS{CAFile: pki.CAFile, CertFile: pki.ClientCert, KeyFile: pki.ClientKey}
	logs := &connectLog{want: "unknown authority"}
	ready := make(chan *Agent, 1)
	a, err := New(Options{Profile: p, Version: "test", Logger: slog.New(logs), Ready: func(a *Agent) { ready <- a }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	select {
	case a = <-ready:
	case err := <-done:
		t.Fatalf("agent stopped: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("agent not ready")
	}

	waitFor(t, "two failed connects for the broker's unknown CA", func() bool { n, _ := logs.count(); return n >= 2 })
	_, last := logs.count()
	t.Logf("logged: %s", last)
	select {
	case err := <-done:
		t.Fatalf("agent stopped on a broker it cannot trust: %v", err)
	default:
	}

	copyFile(t, pki.ServerCert, serverCert)
	copyFile(t, pki.ServerKey, serverKey)
	mq.Restart()
	wctx, wcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer wcancel()
	if err := a.WaitMQTT(wctx); err != nil {
		t.Fatal(err)
	}
	pub := publisher(t, mq.URL(), "", "") // the plain listener
	spikeTS := publishSeries(t, pub, "sensors/tls-1/temp", 330, 310)
	waitFor(t, "the event", func() bool {
		return a.State().Readings == 330 && len(edgetest.Messages(t, js, names.StreamEvents)) >= 1
	})
	msgs := edgetest.Messages(t, js, names.StreamEvents)
	var ev wire.Event
	if len(msgs) != 1 || json.Unmarshal(msgs[0].Data, &ev) != nil || !ev.TS.Equal(spikeTS) || ev.Stream != "sensors/tls-1/temp" {
		t.Fatalf("%d events, first %+v", len(msgs), ev)
	}
}
