// Package testenv starts the real servers Outpost's tests talk to: an
// in-process nats-server with JetStream on a random loopback port, and a
// mosquitto process on a free loopback port. Both stop with t.Cleanup. There
// are no mocked brokers in Outpost's tests.
package testenv

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// NATS is an embedded nats-server with JetStream.
type NATS struct {
	t      testing.TB
	opts   server.Options
	Server *server.Server
}

// StartNATS starts nats-server in-process with JetStream, on a random
// loopback port and a temporary store directory.
func StartNATS(t testing.TB) *NATS {
	t.Helper()
	opts := server.Options{
		Host:      "127.0.0.1",
		Port:      server.RANDOM_PORT,
		JetStream: true,
		StoreDir:  t.TempDir(),
		NoLog:     true,
		NoSigs:    true,
	}
	n := &NATS{t: t, opts: opts}
	n.start()
	// Keep the port for restarts on the same address.
	n.opts.Port = n.Server.Addr().(*net.TCPAddr).Port
	t.Cleanup(n.Stop)
	return n
}

func (n *NATS) start() {
	n.t.Helper()
	o := n.opts
	s, err := server.NewServer(&o)
	if err != nil {
		n.t.Fatalf("testenv: nats-server: %v", err)
	}
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		n.t.Fatalf("testenv: nats-server not ready within 10s")
	}
	n.Server = s
}

// URL is the client URL of the server.
func (n *NATS) URL() string { return fmt.Sprintf("nats://127.0.0.1:%d", n.opts.Port) }

// Stop shuts the server down; it is safe to call more than once.
func (n *NATS) Stop() {
	if n.Server != nil {
		n.Server.Shutdown()
		n.Server.WaitForShutdown()
		n.Server = nil
	}
}

// Restart starts the server again on the same address and store directory
// after Stop, as a network outage or a server restart would look to clients.
func (n *NATS) Restart() {
	n.t.Helper()
	n.Stop()
	n.start()
}

// Mosquitto is a mosquitto broker running as a child process.
type Mosquitto struct {
	Port int
	cmd  *exec.Cmd
	conf string
	t    testing.TB
	log  string
	bin  string
}

// MosquittoPath finds the mosquitto binary ($PATH, then /usr/sbin).
func MosquittoPath() (string, error) {
	if p, err := exec.LookPath("mosquitto"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("testenv: mosquitto not found; `make test` installs it (apt-get install mosquitto)")
}

// StartMosquitto starts mosquitto on a free loopback port. extra lines are
// appended to its configuration (e.g. "max_queued_messages 100000").
func StartMosquitto(t testing.TB, extra ...string) *Mosquitto {
	t.Helper()
	bin, err := MosquittoPath()
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	dir := t.TempDir()
	m := &Mosquitto{t: t, conf: filepath.Join(dir, "mosquitto.conf"), log: filepath.Join(dir, "mosquitto.log")}
	m.Port = FreePort(t)
	lines := []string{
		"listener " + strconv.Itoa(m.Port) + " 127.0.0.1",
		"allow_anonymous true",
		"persistence true",
		"persistence_location " + dir + "/",
		"log_dest file " + m.log,
		"max_inflight_messages 1000",
		"max_queued_messages 100000",
	}
	lines = append(lines, extra...)
	if os.Geteuid() == 0 && !hasDirective(extra, "user") {
		// As root, mosquitto drops to the "mosquitto" user, which cannot
		// write the test's temporary directory: persistence (sessions that
		// survive Restart) would silently fail.
		lines = append(lines, "user root")
	}
	if err := os.WriteFile(m.conf, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	m.bin = bin
	m.start()
	t.Cleanup(m.Stop)
	return m
}

// hasDirective reports whether one of the configuration lines sets name.
func hasDirective(lines []string, name string) bool {
	for _, l := range lines {
		if f := strings.Fields(l); len(f) > 0 && f[0] == name {
			return true
		}
	}
	return false
}

func (m *Mosquitto) start() {
	m.t.Helper()
	m.cmd = exec.Command(m.bin, "-c", m.conf)
	if err := m.cmd.Start(); err != nil {
		m.t.Fatalf("testenv: start mosquitto: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", m.Addr(), 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	log, _ := os.ReadFile(m.log)
	m.t.Fatalf("testenv: mosquitto did not listen on %s within 10s; log:\n%s", m.Addr(), log)
}

// Addr is host:port of the broker.
func (m *Mosquitto) Addr() string { return fmt.Sprintf("127.0.0.1:%d", m.Port) }

// URL is the broker's URL for paho ("tcp://127.0.0.1:port").
func (m *Mosquitto) URL() string { return "tcp://" + m.Addr() }

// Stop terminates the broker; safe to call more than once.
func (m *Mosquitto) Stop() {
	if m.cmd != nil && m.cmd.Process != nil {
		_ = m.cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = m.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = m.cmd.Process.Kill()
			<-done
		}
		m.cmd = nil
	}
}

// Restart stops and starts the broker on the same port with the same
// persistence directory.
func (m *Mosquitto) Restart() {
	m.t.Helper()
	m.Stop()
	m.start()
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
