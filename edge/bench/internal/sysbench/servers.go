package sysbench

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/outpost-iot/outpost/shared/names"
)

// natsServer is an embedded nats-server with JetStream and the streams the
// cloud would create.
type natsServer struct {
	srv *server.Server
	url string
}

func startNATS(dir string) (*natsServer, error) {
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true,
		StoreDir: dir, NoLog: true, NoSigs: true})
	if err != nil {
		return nil, fmt.Errorf("nats-server: %w", err)
	}
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("nats-server not ready within 10s")
	}
	n := &natsServer{srv: s, url: fmt.Sprintf("nats://%s", s.Addr())}
	nc, err := nats.Connect(n.url)
	if err != nil {
		n.Stop()
		return nil, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		n.Stop()
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, cfg := range []jetstream.StreamConfig{
		{Name: names.StreamEvents, Subjects: []string{names.EventsAll}, Duplicates: 10 * time.Minute},
		{Name: names.StreamSummaries, Subjects: []string{names.SummariesAll}, MaxAge: time.Hour},
		{Name: names.StreamState, Subjects: []string{names.StateAll}, MaxMsgsPerSubject: 1},
	} {
		if _, err := js.CreateOrUpdateStream(ctx, cfg); err != nil {
			n.Stop()
			return nil, fmt.Errorf("create stream %s: %w", cfg.Name, err)
		}
	}
	return n, nil
}

func (n *natsServer) Stop() {
	n.srv.Shutdown()
	n.srv.WaitForShutdown()
}

// mosquitto is a mosquitto process on a free loopback port, configured as
// the tests' (shared/testenv) with a deeper queue, so that a slow
// subscriber makes the broker queue, not drop.
type mosquitto struct {
	cmd *exec.Cmd
	url string
}

// mosquittoConf are the configuration lines besides listener and
// persistence.
var mosquittoConf = []string{
	"allow_anonymous true",
	"max_inflight_messages 1000",
	"max_queued_messages 2000000",
}

func mosquittoPath() (string, error) {
	if p, err := exec.LookPath("mosquitto"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("mosquitto not found on PATH or in /usr/sbin (apt-get install mosquitto)")
}

func startMosquitto(dir string) (*mosquitto, error) {
	bin, err := mosquittoPath()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	lines := append([]string{
		"listener " + strconv.Itoa(port) + " 127.0.0.1",
		"persistence true",
		"persistence_location " + dir + "/",
		"log_dest file " + filepath.Join(dir, "mosquitto.log"),
	}, mosquittoConf...)
	conf := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(conf, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		return nil, err
	}
	m := &mosquitto{cmd: exec.Command(bin, "-c", conf), url: fmt.Sprintf("tcp://127.0.0.1:%d", port)}
	if err := m.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start mosquitto: %w", err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			return m, nil
		}
	}
	m.Stop()
	return nil, fmt.Errorf("mosquitto did not listen on %s within 10s", addr)
}

func (m *mosquitto) Stop() {
	stopProcess(m.cmd)
}

// stopProcess interrupts cmd's process and kills it after 5 s.
func stopProcess(cmd *exec.Cmd) {
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
