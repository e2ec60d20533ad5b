package testenv

import (
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

func TestServersStart(t *testing.T) {
	n := StartNATS(t)
	m := StartMosquitto(t)
	for _, addr := range []string{n.Server.Addr().String(), m.Addr()} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("dial %s: %v", addr, err)
		}
		c.Close()
	}
	n.Restart()
	if !n.Server.Running() {
		t.Fatal("nats-server not running after restart")
	}
}

// A mosquitto whose port is taken exits at once; launch reports it (so
// StartMosquitto tries another port) instead of waiting, or, worse,
// taking whatever answers on the port for the broker.
func TestMosquittoPortTaken(t *testing.T) {
	m := StartMosquitto(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	m.Stop()
	conf, err := os.ReadFile(m.conf)
	if err != nil {
		t.Fatal(err)
	}
	taken := l.Addr().(*net.TCPAddr).Port
	conf = []byte(strings.Replace(string(conf), fmt.Sprintf("listener %d ", m.Port), fmt.Sprintf("listener %d ", taken), 1))
	if err := os.WriteFile(m.conf, conf, 0o644); err != nil {
		t.Fatal(err)
	}
	m.Port = taken
	t0 := time.Now()
	err = m.launch()
	if err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("launch on a taken port: %v", err)
	}
	t.Logf("reported in %v: %v", time.Since(t0), err)
}

// FreePort hands out distinct ports that can be listened on, below the
// ephemeral range when the kernel says where it is.
func TestFreePort(t *testing.T) {
	lo, hi := belowEphemeral()
	seen := map[int]bool{}
	for range 50 {
		p := FreePort(t)
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p] = true
		if hi > lo && (p < lo || p >= hi) {
			t.Fatalf("port %d outside [%d, %d)", p, lo, hi)
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			t.Fatalf("listen on the free port: %v", err)
		}
		l.Close()
	}
	t.Logf("ports from [%d, %d)", lo, hi)
}
