package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/outpost-iot/outpost/edge/internal/edgetest"
	"github.com/outpost-iot/outpost/edge/internal/outbox"
	"github.com/outpost-iot/outpost/shared/names"
	"github.com/outpost-iot/outpost/shared/profile"
	"github.com/outpost-iot/outpost/shared/testenv"
	"github.com/outpost-iot/outpost/shared/wire"
)

// crashChildEnv names the profile file a child agent process runs with.
const crashChildEnv = "OUTPOST_CRASH_CHILD_PROFILE"

// TestCrashChildProcess is not a test: it is the agent process that
// TestCrashKill9 starts (the test binary re-executing itself) and kills.
func TestCrashChildProcess(t *testing.T) {
	path := os.Getenv(crashChildEnv)
	if path == "" {
		t.Skip("run by TestCrashKill9 only")
	}
	p, err := profile.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	a, err := New(Options{Profile: p, Version: "crash-child", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	if err := a.Run(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestCrashKill9: the agent process is killed with SIGKILL at random
// instants (at least 20 times) while readings with spikes stream through a
// real mosquitto (persistent session, deep queue), and restarted each time
// on the same data directory. Afterwards every spike is in OUTPOST_EVENTS
// exactly once, events are in seq order with no seq twice, and the outbox
// is empty. The kill instants are seeded: the seed is logged, and
// OUTPOST_CRASH_SEED=n replays them.
func TestCrashKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("kills a child agent 20 times")
	}
	seed := time.Now().UnixNano()
	if s := os.Getenv("OUTPOST_CRASH_SEED"); s != "" {
		seed, _ = strconv.ParseInt(s, 10, 64)
	}
	t.Logf("seed %d (OUTPOST_CRASH_SEED=%d replays the kill instants)", seed, seed)
	rng := rand.New(rand.NewSource(seed))

	srv := testenv.StartNATS(t)
	js := edgetest.CreateStreams(t, srv.URL())
	mq := testenv.StartMosquitto(t, "max_queued_messages 1000000")
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	profPath := filepath.Join(dir, "profile.yaml")
	if err := os.WriteFile(profPath, []byte(deliveryYAML("gw-crash", srv.URL(), mq.URL(), dataDir)), 0o600); err != nil {
		t.Fatal(err)
	}
	exe, logf, logPath := childSetup(t, dir)
	var lastStart time.Time
	start := func() *exec.Cmd {
		lastStart = time.Now()
		cmd := exec.Command(exe, "-test.run=^TestCrashChildProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+profPath)
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	child := start()
	t.Cleanup(func() {
		if child != nil {
			child.Process.Kill()
			child.Wait()
		}
	})

	// The first run subscribes (creating the persistent session) before
	// readings flow, so mosquitto queues for it from then on: probe until
	// the agent reports a reading.
	probe := publisher(t, mq.URL(), "", "")
	t.Cleanup(func() {
		if t.Failed() {
			logTail(t, logPath)
			keep := filepath.Join(os.TempDir(), fmt.Sprintf("outpost-crash-%d.log", seed))
			if b, err := os.ReadFile(logPath); err == nil && os.WriteFile(keep, b, 0o644) == nil {
				t.Logf("agent log kept in %s", keep)
			}
		}
	})
	waitFor(t, "the agent's first reading", func() bool {
		probe.Publish("sensors/probe/temp", 1, false, fmt.Sprintf(`{"ts":%d,"value":1}`, time.Now().UnixMilli())).Wait()
		return lastState(js, "gw-crash").Readings > 0
	})

	sig := newSignal(8, 70, seed)
	published := make(chan struct{})
	go func() {
		defer close(published)
		sig.publish(t, publisher(t, mq.URL(), "", ""), 3750, 1000) // 30 s of 8 streams at 1000 readings/s
	}()

	kills := 0
	closed := func() bool {
		select {
		case <-published:
			return true
		default:
			return false
		}
	}
	for kills < 20 || !closed() {
		time.Sleep(time.Duration(200+rng.Intn(1600)) * time.Millisecond)
		if err := child.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		child.Wait()
		kills++
		fmt.Fprintf(logf, "{\"test\":\"SIGKILL %d\"}\n", kills)
		child = start()
	}
	t.Logf("%d kills; %d spikes published", kills, len(sig.spikeSet()))

	d := waitDelivered(t, js, "gw-crash", sig.spikeSet(), 60*time.Second)
	// Stop the last agent cleanly (once it runs: its state says it started
	// after the last restart) and look into its outbox.
	waitFor(t, "the last agent's state", func() bool { return !lastState(js, "gw-crash").Started.Before(lastStart) })
	child.Process.Signal(syscall.SIGTERM)
	if err := child.Wait(); err != nil {
		t.Errorf("last agent: %v", err)
	}
	child = nil
	d = collect(t, js, "gw-crash")
	checkDelivered(t, d, sig.spikeSet())
	ob, err := outbox.Open(filepath.Join(dataDir, "outbox.db"), outbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ob.Close()
	st := ob.Stats()
	ev := st.ByKind[outbox.KindEvent]
	t.Logf("outbox: last seq %d, anomalies appended %d, delivered %d, duplicates caught %d, depth %d",
		st.LastSeq, ev.Appended, ev.Delivered, ev.Duplicates, st.Depth)
	if st.Depth != 0 || st.Drops != 0 {
		t.Fatalf("outbox after the run: %+v", st)
	}
	if int(ev.Appended) != len(sig.spikeSet()) {
		t.Fatalf("%d anomalies appended to the outbox, %d spikes", ev.Appended, len(sig.spikeSet()))
	}
}

// checkDeliveredOK is checkDelivered without failing.
func checkDeliveredOK(t *testing.T, d delivered, spikes map[string]bool) bool {
	for i := 1; i < len(d.seqs); i++ {
		if d.seqs[i] <= d.seqs[i-1] {
			return false
		}
	}
	for k := range spikes {
		if d.anomalies[k] != 1 {
			return false
		}
	}
	return len(d.anomalies) == len(spikes)
}

func logTail(t *testing.T, path string) {
	b, _ := os.ReadFile(path)
	if len(b) > 20000 {
		b = b[len(b)-20000:]
	}
	t.Logf("agent log (tail):\n%s", b)
}

// childSetup returns the test binary, to run as a child agent process,
// and dir/agent.log (open, closed at the end of the test) for its output.
func childSetup(t *testing.T, dir string) (exe string, logf *os.File, logPath string) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	logPath = filepath.Join(dir, "agent.log")
	if logf, err = os.Create(logPath); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logf.Close() })
	return exe, logf, logPath
}

// lastState returns agent's last state message (zero if none).
func lastState(js jetstream.JetStream, agent string) wire.State {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var st wire.State
	s, err := js.Stream(ctx, names.StreamState)
	if err != nil {
		return st
	}
	m, err := s.GetLastMsgForSubject(ctx, names.StateSubject(agent))
	if err != nil {
		return st
	}
	json.Unmarshal(m.Data, &st)
	return st
}
