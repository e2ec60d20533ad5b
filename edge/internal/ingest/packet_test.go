package ingest

import (
	"bytes"
	"errors"
	"testing"
)

// decodeAny decodes one packet the way the lean client does (header, then
// the body by type), for the fuzz target.
func decodeAny(b []byte, maxPacket int) (header, int, error) {
	h, err := parseHeader(b)
	if err != nil {
		return h, 0, err
	}
	if h.remaining > maxRemaining {
		return h, 0, errors.New("remaining length over the maximum")
	}
	if h.remaining > maxPacket {
		return h, 0, protoErr(h.typ, "over the limit")
	}
	if len(b) < h.size+h.remaining {
		return h, 0, errShort
	}
	body := b[h.size : h.size+h.remaining]
	switch h.typ {
	case pktPublish:
		p, err := decodePublish(h.flags, body)
		if err != nil {
			return h, 0, err
		}
		if err := checkTopic(p.topic); err != nil {
			return h, 0, err
		}
	case pktConnack:
		_, err = decodeConnack(h.flags, body)
	case pktSuback:
		_, _, err = decodeSuback(h.flags, body)
	}
	return h, h.size + h.remaining, err
}

// FuzzDecodePacket: no input makes the decoder panic or read past what it
// was given; a PUBLISH it accepts encodes back to the same bytes when its
// remaining length was minimally encoded.
func FuzzDecodePacket(f *testing.F) {
	for _, seed := range [][]byte{
		pub("sensors/a/b", `{"v":1}`, 1, 7),
		pub("t", "", 0, 0),
		{pktConnack << 4, 2, 1, 0},
		{pktSuback << 4, 3, 0, 1, 0x80},
		{pktPingresp << 4, 0},
		{pktPublish << 4, 0x80, 0x80, 0x80, 0x80, 0x01},
		{pktPublish<<4 | 6, 5, 0, 1, 'a', 0, 1},
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		h, n, err := decodeAny(b, 1<<20)
		if err != nil {
			var pe *ProtocolError
			if err != errShort && !errors.As(err, &pe) && err.Error() != "remaining length over the maximum" {
				t.Fatalf("error of an unexpected kind: %v", err)
			}
			return
		}
		if n > len(b) || n < 2 {
			t.Fatalf("consumed %d of %d bytes", n, len(b))
		}
		if h.typ != pktPublish {
			return
		}
		p, _ := decodePublish(h.flags, b[h.size:n])
		if p.qos == 0 {
			p.id = 0
		}
		again := appendPublish(nil, p)
		if len(appendRemaining(nil, h.remaining)) == h.size-1 && !bytes.Equal(again, b[:n]) {
			t.Fatalf("re-encoded %x, decoded from %x", again, b[:n])
		}
	})
}

// TestRemainingLength: the encoding of the specification's boundary values
// (section 2.2.3) and back.
func TestRemainingLength(t *testing.T) {
	for _, c := range []struct {
		n   int
		enc []byte
	}{
		{0, []byte{0}}, {127, []byte{0x7f}}, {128, []byte{0x80, 1}}, {16383, []byte{0xff, 0x7f}},
		{16384, []byte{0x80, 0x80, 1}}, {2097151, []byte{0xff, 0xff, 0x7f}}, {2097152, []byte{0x80, 0x80, 0x80, 1}},
		{maxRemaining, []byte{0xff, 0xff, 0xff, 0x7f}},
	} {
		got := appendRemaining(nil, c.n)
		if !bytes.Equal(got, c.enc) {
			t.Errorf("%d encoded %x, want %x", c.n, got, c.enc)
		}
		h, err := parseHeader(append([]byte{pktPublish << 4}, got...))
		if err != nil || h.remaining != c.n || h.size != 1+len(c.enc) {
			t.Errorf("%x decoded %+v, %v", c.enc, h, err)
		}
	}
}

// TestConnectEncoding: a CONNECT with clean session off, credentials and
// keep-alive, byte by byte (section 3.1).
func TestConnectEncoding(t *testing.T) {
	got, err := appendConnect(nil, connectOptions{clientID: "gw", username: "u", password: "p", keepAlive: 30})
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{0x10, 20, 0, 4, 'M', 'Q', 'T', 'T', 4, 0xc0, 0, 30, 0, 2, 'g', 'w', 0, 1, 'u', 0, 1, 'p'}
	if !bytes.Equal(got, want) {
		t.Fatalf("CONNECT %x, want %x", got, want)
	}
	sub, err := appendSubscribe(nil, 1, []string{"a/#", "b"}, 1)
	if err != nil {
		t.Fatal(err)
	}
	want = []byte{0x82, 12, 0, 1, 0, 3, 'a', '/', '#', 1, 0, 1, 'b', 1}
	if !bytes.Equal(sub, want) {
		t.Fatalf("SUBSCRIBE %x, want %x", sub, want)
	}
}
