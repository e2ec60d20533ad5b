package testenv

import (
	"net"
	"testing"
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
