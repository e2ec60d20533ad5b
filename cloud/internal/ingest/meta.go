package ingest

import (
	"errors"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// MsgMeta is what the ingest needs of a JetStream message's metadata.
type MsgMeta struct {
	// StreamSeq and ConsumerSeq are the message's sequence numbers in the
	// stream and in the consumer's deliveries.
	StreamSeq, ConsumerSeq uint64
	// NumDelivered is how often the message was delivered (1 the first
	// time).
	NumDelivered uint64
	// Timestamp is when the stream stored the message.
	Timestamp time.Time
}

// errNotJS is returned for messages whose reply subject is not a
// JetStream acknowledgement subject.
var errNotJS = errors.New("ingest: not a JetStream message (reply subject is no $JS.ACK subject)")

// Meta parses the metadata of a message delivered by a JetStream consumer
// from its reply subject, like jetstream.Msg.Metadata but without
// allocating: it runs once or twice for every message ingested. Reply
// subjects are "$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>"
// or, from newer servers, "$JS.ACK.<domain>.<account hash>.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>[.<token>...]".
func Meta(msg jetstream.Msg) (MsgMeta, error) {
	return parseAckReply(msg.Reply())
}

func parseAckReply(reply string) (MsgMeta, error) {
	const prefix = "$JS.ACK."
	rest, ok := strings.CutPrefix(reply, prefix)
	if !ok {
		return MsgMeta{}, errNotJS
	}
	var tok [12]string
	n := 0
	for n < len(tok) {
		t, after, more := strings.Cut(rest, ".")
		tok[n] = t
		n++
		if !more {
			break
		}
		rest = after
	}
	// Tokens after "$JS.ACK.": 7 in the old form, at least 9 in the new.
	var f []string
	switch {
	case n == 7:
		f = tok[2:7]
	case n >= 9:
		f = tok[4:9]
	default:
		return MsgMeta{}, errNotJS
	}
	var v [5]uint64 // delivered, sseq, cseq, ts, pending
	for i, t := range f {
		if t == "" {
			return MsgMeta{}, errNotJS
		}
		for j := 0; j < len(t); j++ {
			d := t[j]
			if d < '0' || d > '9' {
				return MsgMeta{}, errNotJS
			}
			v[i] = v[i]*10 + uint64(d-'0')
		}
	}
	return MsgMeta{NumDelivered: v[0], StreamSeq: v[1], ConsumerSeq: v[2], Timestamp: time.Unix(0, int64(v[3]))}, nil
}
