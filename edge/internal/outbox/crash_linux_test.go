//go:build linux

package outbox

import (
	"bufio"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/shared/testenv"
)

// TestCrashChildAppends is the child of TestCrashKill9Log: it appends keyed
// records from four goroutines as fast as it can, printing "ack KEY SEQ"
// once an append's Done reported success (what the agent acknowledges to
// the broker) and "dup KEY SEQ" for a duplicate, and deletes every third
// acknowledged record as an uplink would, until it is killed.
func TestCrashChildAppends(t *testing.T) {
	path := os.Getenv("OUTBOX_CRASH_CHILD")
	if path == "" {
		t.Skip("run by TestCrashKill9Log")
	}
	o, err := Open(path, Options{ApplyQuiet: time.Millisecond, ApplyDelay: 20 * time.Millisecond, DeleteDelay: 10 * time.Millisecond})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(1)
	}
	round, _ := strconv.Atoi(os.Getenv("OUTBOX_CRASH_ROUND"))
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	say := func(format string, args ...any) {
		mu.Lock()
		fmt.Fprintf(out, format, args...)
		out.Flush()
		mu.Unlock()
	}
	fmt.Println("ready")
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				// Every round repeats some keys of the previous one: a
				// broker's redelivery after the crash.
				key := fmt.Sprintf("r%d-g%d-%d", round, g, i)
				if i%10 == 0 && round > 0 {
					key = fmt.Sprintf("r%d-g%d-%d", round-1, g, i/10)
				}
				ch := make(chan struct{})
				o.Append(Request{Kind: KindEvent, Key: []byte(key),
					Build: func(seq uint64) ([]byte, error) { return []byte(key), nil },
					Done: func(seq uint64, err error) {
						switch {
						case err == nil:
							say("ack %s %d\n", key, seq)
							if seq%3 == 0 {
								say("del %d\n", seq)
								o.DeleteLater(seq)
							}
						case errors.Is(err, ErrDuplicate):
							say("dup %s %d\n", key, seq)
						default:
							say("err %s %v\n", key, err)
						}
						close(ch)
					}})
				<-ch
			}
		}()
	}
	wg.Wait()
}

// TestCrashKill9Log kills a process appending to an outbox with SIGKILL at
// random instants, 12 times on the same files, and damages the log after
// its last whole record as a power loss during a write would (a torn,
// never acknowledged record). After each crash: every acknowledged record
// not deleted is there with its seq, no key is stored twice, a key
// appended again is recognised with the first record's seq, seqs only
// grow, and the counts add up.
func TestCrashKill9Log(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	path := filepath.Join(t.TempDir(), "o.db")
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 9))
	acked := map[string]uint64{} // key -> seq, over all rounds
	deleted := map[uint64]bool{}
	var lastSeq uint64
	for round := 0; round < 12; round++ {
		cmd := exec.Command(os.Args[0], "-test.run", "^TestCrashChildAppends$", "-test.v")
		cmd.Env = append(os.Environ(), "OUTBOX_CRASH_CHILD="+path, "OUTBOX_CRASH_ROUND="+strconv.Itoa(round))
		var stdout testenv.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stdout
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Wait for the child, then kill it at a random instant once it
		// has acknowledged something: on a loaded machine its first log
		// sync can take longer than the random delay.
		waitFor := func(what string) {
			deadline := time.Now().Add(20 * time.Second)
			for !stdout.Contains(what) {
				if time.Now().After(deadline) {
					cmd.Process.Kill()
					cmd.Wait()
					t.Fatalf("round %d: no %q from the child in 20s:\n%s", round, what, stdout.String())
				}
				time.Sleep(2 * time.Millisecond)
			}
		}
		waitFor("ready")
		time.Sleep(time.Duration(30+rng.IntN(250)) * time.Millisecond)
		waitFor("\nack ")
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		n := 0
		for _, l := range strings.Split(stdout.String(), "\n") {
			f := strings.Fields(l)
			switch {
			case len(f) == 3 && f[0] == "ack":
				seq, _ := strconv.ParseUint(f[2], 10, 64)
				if prev, ok := acked[f[1]]; ok {
					t.Fatalf("round %d: key %s stored twice: seqs %d and %d", round, f[1], prev, seq)
				}
				acked[f[1]] = seq
				n++
			case len(f) == 3 && f[0] == "dup":
				seq, _ := strconv.ParseUint(f[2], 10, 64)
				if want, ok := acked[f[1]]; ok && want != seq {
					t.Fatalf("round %d: duplicate %s reported seq %d, stored %d", round, f[1], seq, want)
				}
			case len(f) == 2 && f[0] == "del":
				seq, _ := strconv.ParseUint(f[1], 10, 64)
				deleted[seq] = true
			case len(f) > 0 && f[0] == "err":
				t.Fatalf("round %d: %s", round, l)
			}
		}
		if n == 0 {
			t.Fatalf("round %d: nothing acknowledged:\n%s", round, stdout.String())
		}
		if round%2 == 1 {
			seqs := map[uint64]bool{}
			for _, s := range acked {
				seqs[s] = true
			}
			tearLogTail(t, path+".wal", seqs, rng)
		}
		o, err := Open(path, Options{})
		if err != nil {
			t.Fatalf("round %d: open after the crash: %v", round, err)
		}
		recs, err := o.Pending(0, 1<<30)
		if err != nil {
			t.Fatal(err)
		}
		have := map[uint64]string{}
		keys := map[string]bool{}
		for i, r := range recs {
			if i > 0 && r.Seq <= recs[i-1].Seq {
				t.Fatalf("round %d: seq %d after %d", round, r.Seq, recs[i-1].Seq)
			}
			if keys[string(r.Data)] {
				t.Fatalf("round %d: key %s stored twice", round, r.Data)
			}
			keys[string(r.Data)] = true
			have[r.Seq] = string(r.Data)
		}
		for k, seq := range acked {
			if deleted[seq] {
				continue
			}
			if have[seq] != k {
				t.Fatalf("round %d: acknowledged %s (seq %d) lost after the crash (found %q)", round, k, seq, have[seq])
			}
		}
		st := o.Stats()
		if st.LastSeq < lastSeq {
			t.Fatalf("round %d: last seq went back from %d to %d", round, lastSeq, st.LastSeq)
		}
		lastSeq = st.LastSeq
		checkInvariants(t, o)
		if err := o.Close(); err != nil {
			t.Fatal(err)
		}
		t.Logf("round %d: %d acknowledged (%d in all), %d records held, last seq %d", round, n, len(acked), len(recs), st.LastSeq)
	}
}

// tearLogTail does to the log what a power loss during a write does: the
// last record, if none of its entries was acknowledged (its write or sync
// had not finished), is torn (noise over it from its middle); otherwise
// a torn record after it is left (a write that had just begun).
func tearLogTail(t *testing.T, path string, acked map[uint64]bool, rng *rand.Rand) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	lastOff, lastAcked := int64(-1), false
	end, err := walScan(f, walSize, func(off int64, es []walEntry) error {
		lastOff, lastAcked = off, false
		for _, e := range es {
			lastAcked = lastAcked || acked[e.seq]
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	at := end
	if lastOff >= 0 && !lastAcked {
		at = lastOff + (end-lastOff)/2
	}
	noise := make([]byte, 64+rng.IntN(512))
	for i := range noise {
		noise[i] = byte(rng.IntN(256))
	}
	if _, err := f.WriteAt(noise, at); err != nil {
		t.Fatal(err)
	}
}
