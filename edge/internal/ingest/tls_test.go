package ingest

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/shared/profile"
	"github.com/outpost-iot/outpost/shared/testenv"
)

// logRecorder keeps the messages logged, each with its "err" attribute.
type logRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logRecorder) WithGroup(string) slog.Handler            { return l }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	s := r.Message
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "err" {
			s += ": " + a.Value.String()
		}
		return true
	})
	l.mu.Lock()
	l.msgs = append(l.msgs, s)
	l.mu.Unlock()
	return nil
}

// matching returns the messages that start with prefix and contain sub.
func (l *logRecorder) matching(prefix, sub string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, m := range l.msgs {
		if strings.HasPrefix(m, prefix) && strings.Contains(m, sub) {
			out = append(out, m)
		}
	}
	return out
}

// TestTLSClientCertificate: mosquitto with a private CA and
// require_certificate. The TLS configuration made from the profile's
// mqtt.tls (CA, client certificate) connects and reads, with the lean
// client and with paho (what wss:// brokers use). Without the client
// certificate, or trusting another CA, the connect fails with an error
// that says why, and the client keeps retrying.
func TestTLSClientCertificate(t *testing.T) {
	pki := testenv.NewPKI(t)
	other := testenv.NewPKI(t)
	port := testenv.FreePort(t)
	// "user root": mosquitto started as root would switch to its own user,
	// which cannot read the test's directory.
	mq := testenv.StartMosquitto(t, "user root", fmt.Sprintf("listener %d 127.0.0.1", port),
		"cafile "+pki.CAFile, "certfile "+pki.ServerCert, "keyfile "+pki.ServerKey,
		"require_certificate true")
	url := fmt.Sprintf("mqtts://127.0.0.1:%d", port)
	good := &profile.MQTTTLS{CAFile: pki.CAFile, CertFile: pki.ClientCert, KeyFile: pki.ClientKey}

	for _, cl := range clients {
		t.Run("good/"+cl.name, func(t *testing.T) {
			r := &recorder{}
			startConfig(t, Config{URL: url, ClientID: "tls-good-" + cl.name, QoS: 1, Filters: []string{"sensors/+/+"},
				Handler: r.handle, Logger: quiet(), TLS: loadTLS(t, good), KeepAlive: 5 * time.Second, Paho: cl.paho})
			publish(t, mq.URL(), "mutual tls "+cl.name) // on the plain listener
			waitFor(t, "the reading over mutual TLS", func() bool { return r.has("mutual tls " + cl.name) })
		})
	}

	for _, bad := range []struct {
		name string
		tls  *profile.MQTTTLS
		want string // in the logged error
	}{
		{"no client certificate", &profile.MQTTTLS{CAFile: pki.CAFile}, "certificate"},
		{"another CA", &profile.MQTTTLS{CAFile: other.CAFile, CertFile: pki.ClientCert, KeyFile: pki.ClientKey}, "unknown authority"},
		// The broker refuses a client certificate after the TLS 1.3
		// handshake: its alert ("unknown certificate authority") or, when
		// the reset beats the alert, the client's own explanation.
		{"client certificate of another CA", &profile.MQTTTLS{CAFile: pki.CAFile, CertFile: other.ClientCert, KeyFile: other.ClientKey}, "certificate"},
	} {
		t.Run(bad.name, func(t *testing.T) { connectFails(t, url, loadTLS(t, bad.tls), bad.want) })
	}
}

// loadTLS is the client TLS configuration of m for a broker at 127.0.0.1.
func loadTLS(t *testing.T, m *profile.MQTTTLS) *tls.Config {
	t.Helper()
	cfg, err := m.Load("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// connectFails checks that a client of url with tlsCfg does not connect,
// that it logs "mqtt connect failed" with want in the error twice (it
// failed, said why, and tried again).
func connectFails(t *testing.T, url string, tlsCfg *tls.Config, want string) {
	t.Helper()
	logs := &logRecorder{}
	r := &recorder{}
	c, err := Start(Config{URL: url, ClientID: "tls-bad", QoS: 1, Filters: []string{"sensors/+/+"},
		Handler: r.handle, Logger: slog.New(logs), TLS: tlsCfg})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	deadline := time.Now().Add(20 * time.Second)
	for len(logs.matching("mqtt connect failed", want)) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for two failed connects saying %q; logged:\n%s", want, strings.Join(logs.matching("", ""), "\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if c.Connected() || c.Stats().Connects != 0 {
		t.Fatalf("connected (%d connects) without valid credentials", c.Stats().Connects)
	}
	t.Logf("logged: %s", logs.matching("mqtt connect failed", want)[0])
}

// TestTLSResetAfterHandshake: a TLS 1.3 server that drops the connection
// right after the handshake without an alert (a broker refusing the client
// certificate when its reset beats its alert) makes the lean client log a
// connect error that says what that usually means.
func TestTLSResetAfterHandshake(t *testing.T) {
	pki := testenv.NewPKI(t)
	cert, err := tls.LoadX509KeyPair(pki.ServerCert, pki.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13})
			if tc.Handshake() == nil {
				// Wait for CONNECT, then reset (SO_LINGER 0).
				buf := make([]byte, 1)
				_, _ = tc.Read(buf)
			}
			c.(*net.TCPConn).SetLinger(0)
			c.Close()
		}
	}()
	for _, cl := range clients {
		t.Run(cl.name, func(t *testing.T) {
			logs := &logRecorder{}
			c, err := Start(Config{URL: "mqtts://" + ln.Addr().String(), ClientID: "tls-reset", QoS: 1, Filters: []string{"sensors/+/+"},
				Handler: (&recorder{}).handle, Logger: slog.New(logs), TLS: loadTLS(t, &profile.MQTTTLS{CAFile: pki.CAFile}), Paho: cl.paho})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			deadline := time.Now().Add(20 * time.Second)
			for len(logs.matching("mqtt connect failed", "right after the TLS handshake")) == 0 {
				if time.Now().After(deadline) {
					t.Fatalf("no connect error explaining the reset; logged:\n%s", strings.Join(logs.matching("", ""), "\n"))
				}
				time.Sleep(20 * time.Millisecond)
			}
			t.Logf("logged: %s", logs.matching("mqtt connect failed", "right after the TLS handshake")[0])
		})
	}
}
