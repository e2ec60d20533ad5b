package agent

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"math/rand"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/edge/internal/edgetest"
	"github.com/outpost-iot/outpost/models/train"
	"github.com/outpost-iot/outpost/shared/profile"
	"github.com/outpost-iot/outpost/shared/testenv"
)

// Environment of TestVideoCrashChild: its profile file, and the file it
// appends its judgements to.
const (
	videoChildEnv       = "OUTPOST_VIDEO_CHILD_PROFILE"
	videoChildJudgedEnv = "OUTPOST_VIDEO_CHILD_JUDGED"
)

// videoCrashYAML is a camera gateway whose every feature stream is judged
// on its own (z-score), so each bucket's features are judged readings.
func videoCrashYAML(agentID, natsURL, mqttURL, dataDir string) string {
	return fmt.Sprintf(`
name: video-crash
agent:
  id: %s
  heartbeat: 1s
nats:
  url: %s
mqtt:
  url: %s
  qos: 1
  topics:
    - filter: cameras/+/detections
      decoder: video
      stream_prefix: cameras/{camera}
      video:
        bucket: 1s
        classes: [person, car, bicycle, motorcycle, bus, truck]
        frame_width: 1920
        frame_height: 1080
streams:
  - match: cameras/#
    window: 120
    scorer: zscore
    low: 4
    high: 6
    cooldown: 30s
    warmup: 20
summary_interval: 1h
data_dir: %s
`, agentID, natsURL, mqttURL, dataDir)
}

// judgedLine is how TestVideoCrashChild writes a judgement: stream, time
// (unix ns) and value, exactly.
func judgedLine(j Judged) string {
	return fmt.Sprintf("%s %d %s\n", j.Stream, j.TS.UnixNano(), strconv.FormatFloat(j.Value, 'g', -1, 64))
}

// TestVideoCrashChild is not a test: it is the agent process that
// TestVideoCrashRestart starts (the test binary re-executing itself), stops
// and kills. It appends every judgement to the file named by
// OUTPOST_VIDEO_CHILD_JUDGED (one write each, so a kill loses none
// written).
func TestVideoCrashChild(t *testing.T) {
	path := os.Getenv(videoChildEnv)
	if path == "" {
		t.Skip("run by TestVideoCrashRestart only")
	}
	p, err := profile.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(os.Getenv(videoChildJudgedEnv), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	a, err := New(Options{Profile: p, Version: "video-crash-child", Logger: log,
		OnJudged: func(j Judged) { f.WriteString(judgedLine(j)) }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	if err := a.Run(ctx); err != nil {
		t.Fatal(err)
	}
}

// readJudged parses a judgements file: values by stream and time; n counts
// the lines.
func readJudged(t *testing.T, path string) (vals map[string][]string, n int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, 0
		}
		t.Fatal(err)
	}
	defer f.Close()
	vals = map[string][]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		vals[line[:i]] = append(vals[line[:i]], line[i+1:])
		n++
	}
	return vals, n
}

// TestVideoCrashRestart: the frames of a camera's open bucket survive a
// restart and a kill -9. A reference agent judges every bucket's features
// of a generated camera (60 s at 25 fps, through a real mosquitto) without
// interruption; a second agent process on the same input is stopped
// (SIGTERM) and killed (SIGKILL) in turns, mid-stream, 6 times, and
// restarted on its data directory each time. Every feature of every bucket
// the second agent judges has the reference's value (frames per bucket
// included: no frame lost or counted twice), and it judges every bucket
// the reference judged.
func TestVideoCrashRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("stops and kills a child agent 6 times")
	}
	srv := testenv.StartNATS(t)
	edgetest.CreateStreams(t, srv.URL())
	mq := testenv.StartMosquitto(t, "max_queued_messages 1000000")
	const seconds = 60
	frames := train.SynthVideo(train.Scene{Seed: 29}, seconds)
	pub := publisher(t, mq.URL(), "", "")
	// The last bucket stays open; the one before closes with its first
	// frame.
	last := videoT0.Add((seconds - 2) * time.Second)

	// The reference: no interruption.
	p, err := profile.Parse([]byte(videoCrashYAML("vid-ref", srv.URL(), mq.URL(), t.TempDir())))
	if err != nil {
		t.Fatal(err)
	}
	var ref judgedLog
	_, stop := runVideoAgent(t, p, &ref)
	publishFrames(t, pub, "cam-1", frames, 0, len(frames))
	waitFor(t, "the reference's last bucket", func() bool {
		js := ref.of("cameras/cam-1/frames")
		return len(js) > 0 && !js[len(js)-1].TS.Before(last)
	})
	stop()
	want := map[string]string{}
	ref.mu.Lock()
	for _, j := range ref.js {
		if !strings.HasPrefix(j.Stream, "cameras/cam-1/") {
			continue
		}
		l := strings.TrimSuffix(judgedLine(j), "\n")
		i := strings.LastIndexByte(l, ' ')
		if old, dup := want[l[:i]]; dup {
			t.Fatalf("reference judged %s twice (%s, %s)", l[:i], old, l[i+1:])
		}
		want[l[:i]] = l[i+1:]
	}
	ref.mu.Unlock()
	if n := len(ref.of("cameras/cam-1/frames")); n != seconds-1 {
		t.Fatalf("reference judged %d buckets, want %d", n, seconds-1)
	}
	for _, j := range ref.of("cameras/cam-1/frames") {
		if j.Value != 25 {
			t.Fatalf("reference bucket %v has %g frames", j.TS, j.Value)
		}
	}

	// The agent process stopped and killed.
	dir := t.TempDir()
	profPath := filepath.Join(dir, "profile.yaml")
	judgedPath := filepath.Join(dir, "judged.txt")
	if err := os.WriteFile(profPath, []byte(videoCrashYAML("vid-crash", srv.URL(), mq.URL(), filepath.Join(dir, "data"))), 0o600); err != nil {
		t.Fatal(err)
	}
	exe, logf, logPath := childSetup(t, dir)
	var mu sync.Mutex
	var child *exec.Cmd
	start := func() {
		cmd := exec.Command(exe, "-test.run=^TestVideoCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), videoChildEnv+"="+profPath, videoChildJudgedEnv+"="+judgedPath)
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		child = cmd
		mu.Unlock()
	}
	start()
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		if child != nil {
			child.Process.Kill()
			child.Wait()
		}
		if t.Failed() {
			logTail(t, logPath)
		}
	})
	// The first run subscribes (creating its persistent session) before
	// the frames flow: probe with a camera of its own until a bucket of it
	// is judged.
	probe := 0
	waitFor(t, "the agent's first bucket", func() bool {
		ts := videoT0.Add(time.Duration(probe) * time.Second)
		probe++
		pub.Publish("cameras/probe/detections", 1, false, fmt.Sprintf(`{"camera":"probe","ts":%q,"objects":[]}`, ts.Format(time.RFC3339Nano))).Wait()
		time.Sleep(50 * time.Millisecond)
		_, n := readJudged(t, judgedPath)
		return n > 0
	})

	published := make(chan struct{})
	var interrupted atomic.Int32
	go func() {
		defer close(published)
		// About 10 buckets a second: the interruptions fall all along.
		for i := 0; i < len(frames); i += 25 {
			// Half way, on a machine slow to restart the agent: hold
			// cam-1's second half until 4 interruptions are done,
			// keeping buckets coming on the probe camera meanwhile (the
			// interruptions wait for judged buckets).
			for deadline := time.Now().Add(60 * time.Second); i >= len(frames)/2 && interrupted.Load() < 4 && time.Now().Before(deadline); {
				ts := videoT0.Add(time.Duration(probe) * time.Second)
				probe++
				pub.Publish("cameras/probe/detections", 1, false, fmt.Sprintf(`{"camera":"probe","ts":%q,"objects":[]}`, ts.Format(time.RFC3339Nano))).Wait()
				time.Sleep(100 * time.Millisecond)
			}
			publishFrames(t, pub, "cam-1", frames, i, min(i+25, len(frames)))
			time.Sleep(100 * time.Millisecond)
		}
	}()
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	interruptions := 0
	for k := 0; k < 6 && !closed(published); k++ {
		// Let the agent judge a bucket or two, then interrupt it at a
		// random instant (nearly always in the middle of a bucket).
		_, n0 := readJudged(t, judgedPath)
		waitFor(t, "a bucket judged", func() bool { _, n := readJudged(t, judgedPath); return n > n0 || closed(published) })
		time.Sleep(time.Duration(rng.Intn(400)) * time.Millisecond)
		mu.Lock()
		if k%2 == 0 {
			child.Process.Signal(syscall.SIGTERM)
		} else {
			child.Process.Kill()
		}
		err := child.Wait()
		mu.Unlock()
		if k%2 == 0 && err != nil {
			t.Fatalf("stopped agent: %v", err)
		}
		interruptions++
		interrupted.Store(int32(interruptions))
		fmt.Fprintf(logf, "{\"test\":\"interruption %d\"}\n", k+1)
		start()
	}
	<-published
	if interruptions < 4 {
		t.Errorf("only %d interruptions before the input ended", interruptions)
	}
	var got map[string][]string
	waitFor(t, "the last bucket", func() bool {
		got, _ = readJudged(t, judgedPath)
		return len(got[fmt.Sprintf("cameras/cam-1/frames %d", last.UnixNano())]) > 0
	})
	for key, vals := range got {
		if !strings.HasPrefix(key, "cameras/cam-1/") {
			continue
		}
		w, ok := want[key]
		if !ok {
			t.Errorf("%s judged, not by the reference", key)
			continue
		}
		for _, v := range vals {
			if v != w {
				t.Errorf("%s = %s, the reference's %s (all judgements %v)", key, v, w, vals)
			}
		}
	}
	for key := range want {
		if len(got[key]) == 0 {
			t.Errorf("%s never judged", key)
		}
	}
}

// closed reports whether c is closed.
func closed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}
