package ingest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/outpost-iot/outpost/cloud/internal/metrics"
	"github.com/outpost-iot/outpost/cloud/internal/streams"
	"github.com/outpost-iot/outpost/shared/names"
	"github.com/outpost-iot/outpost/shared/testenv"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestParseAckReply: both forms of the acknowledgement subject, and
// subjects that are not one.
func TestParseAckReply(t *testing.T) {
	ts := time.Date(2026, 11, 23, 10, 0, 0, 123, time.UTC)
	for _, tc := range []struct {
		reply string
		want  MsgMeta
		ok    bool
	}{
		{fmt.Sprintf("$JS.ACK.S.C.2.17.9.%d.5", ts.UnixNano()), MsgMeta{StreamSeq: 17, ConsumerSeq: 9, NumDelivered: 2, Timestamp: ts}, true},
		{fmt.Sprintf("$JS.ACK._.ACCHASH.S.C.1.17.9.%d.5.tok", ts.UnixNano()), MsgMeta{StreamSeq: 17, ConsumerSeq: 9, NumDelivered: 1, Timestamp: ts}, true},
		{fmt.Sprintf("$JS.ACK.dom.ACCHASH.S.C.1.17.9.%d.0", ts.UnixNano()), MsgMeta{StreamSeq: 17, ConsumerSeq: 9, NumDelivered: 1, Timestamp: ts}, true},
		{"", MsgMeta{}, false},
		{"_INBOX.abc", MsgMeta{}, false},
		{"$JS.ACK.S.C.1.17.9.5", MsgMeta{}, false},     // 6 tokens
		{"$JS.ACK.S.C.1.x.9.5.0", MsgMeta{}, false},    // not a number
		{"$JS.ACK.d.h.S.C.1.17.9.5", MsgMeta{}, false}, // 8 tokens
		{"$JS.ACK.S.C.1..9.5.0", MsgMeta{}, false},     // empty number
		{"$JS.ACK.S.C.1.-17.9.5.0", MsgMeta{}, false},  // sign
		{"$JS.ACK.d.h.S.C.1.17.9.5.0.t.u.v", MsgMeta{StreamSeq: 17, ConsumerSeq: 9, NumDelivered: 1, Timestamp: time.Unix(0, 5)}, true},
	} {
		got, err := parseAckReply(tc.reply)
		if (err == nil) != tc.ok {
			t.Errorf("%q: err %v, want ok=%v", tc.reply, err, tc.ok)
			continue
		}
		if tc.ok && (got.StreamSeq != tc.want.StreamSeq || got.ConsumerSeq != tc.want.ConsumerSeq || got.NumDelivered != tc.want.NumDelivered || !got.Timestamp.Equal(tc.want.Timestamp)) {
			t.Errorf("%q: %+v, want %+v", tc.reply, got, tc.want)
		}
	}
}

// TestMetaMatchesLibrary: Meta reads the same metadata as the client
// library from messages a real server delivered, first deliveries and
// redeliveries.
func TestMetaMatchesLibrary(t *testing.T) {
	ns := testenv.StartNATS(t)
	nc, err := nats.Connect(ns.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	if err := streams.Ensure(ctx, js); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		if _, err := js.Publish(ctx, names.EventSubject("m"), []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, names.StreamEvents, jetstream.ConsumerConfig{Durable: "meta", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	check := func(want int) {
		t.Helper()
		batch, err := cons.Fetch(want, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			lib, err := m.Metadata()
			if err != nil {
				t.Fatal(err)
			}
			got, err := Meta(m)
			if err != nil {
				t.Fatalf("Meta(%q): %v", m.Reply(), err)
			}
			if got.StreamSeq != lib.Sequence.Stream || got.ConsumerSeq != lib.Sequence.Consumer || got.NumDelivered != lib.NumDelivered || !got.Timestamp.Equal(lib.Timestamp) {
				t.Errorf("Meta(%q) = %+v, library %+v", m.Reply(), got, lib)
			}
			if n%2 == 0 {
				_ = m.Ack()
			} else {
				_ = m.Nak()
			}
		}
		if n != want {
			t.Fatalf("fetched %d, want %d", n, want)
		}
	}
	check(5)
	check(3) // the redelivered ones
}

// TestFilterDroppedOnUpgrade: a durable created with the stream's only
// subject as its filter (as earlier versions did) is updated to no filter
// and goes on from where it was: what it acknowledged is not delivered
// again, the rest is.
func TestFilterDroppedOnUpgrade(t *testing.T) {
	ns := testenv.StartNATS(t)
	nc, err := nats.Connect(ns.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	if err := streams.Ensure(ctx, js); err != nil {
		t.Fatal(err)
	}
	for seq := 1; seq <= 10; seq++ {
		data := fmt.Sprintf(`{"agent":"u","seq":%d,"n":1}`, seq)
		if _, err := js.Publish(ctx, names.EventSubject("u"), []byte(data), jetstream.WithMsgID(names.MsgID("u", uint64(seq)))); err != nil {
			t.Fatal(err)
		}
	}
	old, err := js.CreateOrUpdateConsumer(ctx, names.StreamEvents, jetstream.ConsumerConfig{
		Durable: "upgrade", FilterSubject: names.EventsAll, AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := old.Fetch(4, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for m := range batch.Messages() {
		if err := m.DoubleAck(ctx); err != nil {
			t.Fatal(err)
		}
	}
	m := metrics.New(func() float64 { return 0 })
	var mu sync.Mutex
	var got []uint64
	c, err := Start(ctx, js, Config{Name: "upgrade", Stream: names.StreamEvents, Durable: "upgrade", Filter: names.EventsAll, SubjectFor: names.EventSubject,
		Decode: decodeRec, Metrics: m, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Apply: func(_ string, r Result) {
			mu.Lock()
			defer mu.Unlock()
			for _, it := range r.Accepted {
				got = append(got, it.Seq)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	if f := c.cons.CachedInfo().Config.FilterSubject; f != "" {
		t.Errorf("filter after upgrade = %q, want none", f)
	}
	deadline := time.Now().Add(10 * time.Second)
	for testutil.ToFloat64(m.IngestMessages.WithLabelValues("upgrade", "accepted")) < 6 {
		if time.Now().After(deadline) {
			t.Fatalf("accepted %v of 6", testutil.ToFloat64(m.IngestMessages.WithLabelValues("upgrade", "accepted")))
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(got) != "[5 6 7 8 9 10]" {
		t.Errorf("accepted %v, want seqs 5 to 10", got)
	}
}
