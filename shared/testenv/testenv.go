// Package testenv starts the real servers Outpost's tests talk to: an
// in-process nats-server with JetStream on a random loopback port, and a
// mosquitto process on a free loopback port. Both stop with t.Cleanup. There
// are no mocked brokers in Outpost's tests.
package testenv

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
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
	done chan struct{} // closed when cmd has exited
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
	m := &Mosquitto{t: t, conf: filepath.Join(dir, "mosquitto.conf"), log: filepath.Join(dir, "mosquitto.log"), bin: bin}
	lines := []string{
		"allow_anonymous true",
		"persistence true",
		"persistence_location " + dir + "/",
		"log_dest file " + m.log,
		// The defaults, spelled out so that a "log_type" among extra adds
		// to them: start waits for the "running" line (information).
		"log_type error", "log_type warning", "log_type notice", "log_type information",
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
	// The port was free a moment ago, but anything on the machine may take
	// it before mosquitto binds it (another test's server, or an outgoing
	// connection's local port): then mosquitto exits, and another port is
	// tried.
	for attempt := 1; ; attempt++ {
		m.Port = FreePort(t)
		conf := append([]string{"listener " + strconv.Itoa(m.Port) + " 127.0.0.1"}, lines...)
		if err := os.WriteFile(m.conf, []byte(strings.Join(conf, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		err := m.launch()
		if err == nil {
			break
		}
		if attempt == 5 || !strings.Contains(err.Error(), "in use") {
			t.Fatalf("testenv: %v", err)
		}
		t.Logf("testenv: %v; trying another port", err)
	}
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

// launch starts mosquitto and waits until it logs that it runs (its
// listeners are open), then checks that its port answers. An error when
// it exits first (e.g. its port is taken) or does not come up in 10 s.
func (m *Mosquitto) launch() error {
	from := len(m.Log()) // what this start logs follows
	logged := func() string {
		if l := m.Log(); len(l) >= from {
			return l[from:]
		}
		return m.Log()
	}
	var stderr strings.Builder
	cmd := exec.Command(m.bin, "-c", m.conf)
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start mosquitto: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	m.cmd, m.done = cmd, done
	deadline := time.Now().Add(10 * time.Second)
	for runningLines(logged()) == 0 {
		select {
		case <-done:
			m.cmd = nil
			return fmt.Errorf("mosquitto exited at start on %s: %s\nlog:\n%s", m.Addr(), strings.TrimSpace(stderr.String()), logged())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			m.Stop()
			return fmt.Errorf("mosquitto did not start on %s within 10s; log:\n%s", m.Addr(), logged())
		}
	}
	for {
		c, err := net.DialTimeout("tcp", m.Addr(), time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			m.Stop()
			return fmt.Errorf("mosquitto runs but %s does not answer: %v; log:\n%s", m.Addr(), err, logged())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// runningLines counts the "mosquitto version ... running" lines of log: one
// per start that opened its listeners.
func runningLines(log string) int {
	n := 0
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "mosquitto version") && strings.HasSuffix(strings.TrimSpace(l), " running") {
			n++
		}
	}
	return n
}

func (m *Mosquitto) start() {
	m.t.Helper()
	if err := m.launch(); err != nil {
		m.t.Fatalf("testenv: %v", err)
	}
}

// Addr is host:port of the broker.
func (m *Mosquitto) Addr() string { return fmt.Sprintf("127.0.0.1:%d", m.Port) }

// Log returns what mosquitto has logged so far (across restarts). Start it
// with "log_type all" to see the packets it receives, e.g. to wait until it
// has read a client's PUBACK instead of sleeping.
func (m *Mosquitto) Log() string {
	b, _ := os.ReadFile(m.log)
	return string(b)
}

// URL is the broker's URL for paho ("tcp://127.0.0.1:port").
func (m *Mosquitto) URL() string { return "tcp://" + m.Addr() }

// Stop terminates the broker; safe to call more than once.
func (m *Mosquitto) Stop() {
	if m.cmd != nil && m.cmd.Process != nil {
		_ = m.cmd.Process.Signal(os.Interrupt)
		select {
		case <-m.done:
		case <-time.After(5 * time.Second):
			_ = m.cmd.Process.Kill()
			<-m.done
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
//
// It is picked below the kernel's ephemeral range (ip_local_port_range)
// when there is room there: a port of that range, once released, may be
// taken at any moment as the local port of an outgoing connection or by a
// server bound to port 0, before the test's server binds it; below the
// range only another FreePort may pick it. One test binary never hands out
// the same port twice.
func FreePort(t testing.TB) int {
	t.Helper()
	portMu.Lock()
	defer portMu.Unlock()
	if lo, hi := belowEphemeral(); hi > lo {
		for range 200 {
			p := lo + rand.IntN(hi-lo)
			if portGiven[p] {
				continue
			}
			l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
			if err != nil {
				continue
			}
			l.Close()
			portGiven[p] = true
			return p
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

var (
	portMu    sync.Mutex
	portGiven = map[int]bool{}
)

// belowEphemeral is the range [lo, hi) of up to 12,000 ports just below
// the kernel's ephemeral ports, and not below 10000; empty when the
// range is unknown (not Linux) or leaves too little room.
func belowEphemeral() (lo, hi int) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0, 0
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0, 0
	}
	first, err := strconv.Atoi(f[0])
	if err != nil || first-1000 < 10000 {
		return 0, 0
	}
	return max(10000, first-12000), first
}
