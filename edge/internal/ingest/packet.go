package ingest

// MQTT 3.1.1 (OASIS standard, 2014) control packets: the encoding of the
// few packets the lean client sends and the decoding of those a broker
// sends to a subscriber. Written from the specification's section 2 (fixed
// header, remaining length) and section 3 (the packets).

import (
	"errors"
	"fmt"
	"unicode/utf8"
)

// Packet types (the fixed header's high nibble).
const (
	pktConnect     = 1
	pktConnack     = 2
	pktPublish     = 3
	pktPuback      = 4
	pktSubscribe   = 8
	pktSuback      = 9
	pktUnsuback    = 11
	pktPingreq     = 12
	pktPingresp    = 13
	pktDisconnect  = 14
	maxRemaining   = 268435455 // four bytes of remaining length
	maxVarintBytes = 4
)

// errShort means the buffer does not hold a whole packet yet.
var errShort = errors.New("mqtt: short packet")

// ProtocolError is a packet from the broker that breaks MQTT 3.1.1: the
// connection is closed and made again.
type ProtocolError struct {
	// Type is the packet type (0 when the fixed header itself is bad).
	Type byte
	// Reason says what is wrong.
	Reason string
}

func (e *ProtocolError) Error() string {
	if e.Type == 0 {
		return "mqtt protocol error: " + e.Reason
	}
	return fmt.Sprintf("mqtt protocol error in a packet of type %d: %s", e.Type, e.Reason)
}

func protoErr(typ byte, format string, args ...any) error {
	return &ProtocolError{Type: typ, Reason: fmt.Sprintf(format, args...)}
}

// header is a decoded fixed header.
type header struct {
	typ, flags byte
	// size is the fixed header's length in bytes; remaining the length of
	// what follows it.
	size, remaining int
}

// parseHeader decodes the fixed header at the start of b. It returns
// errShort when b ends inside the header.
func parseHeader(b []byte) (header, error) {
	if len(b) < 2 {
		return header{}, errShort
	}
	h := header{typ: b[0] >> 4, flags: b[0] & 0x0f}
	mult := 1
	for i := 1; ; i++ {
		if i > maxVarintBytes {
			return header{}, protoErr(0, "remaining length longer than %d bytes", maxVarintBytes)
		}
		if i >= len(b) {
			return header{}, errShort
		}
		h.remaining += int(b[i]&0x7f) * mult
		if b[i]&0x80 == 0 {
			h.size = i + 1
			break
		}
		mult <<= 7
	}
	return h, nil
}

// publishPacket is a decoded PUBLISH packet. Topic and Payload alias the buffer
// the packet was decoded from.
type publishPacket struct {
	topic   []byte
	payload []byte
	id      uint16
	qos     byte
	dup     bool
	retain  bool
}

// decodePublish decodes a PUBLISH packet's variable header and payload
// (body: what follows the fixed header). It does not check the topic's
// UTF-8 (see checkTopic), so that a caller can skip it for topics it has
// seen before.
func decodePublish(flags byte, body []byte) (publishPacket, error) {
	p := publishPacket{qos: (flags >> 1) & 3, dup: flags&8 != 0, retain: flags&1 != 0}
	if p.qos == 3 {
		return p, protoErr(pktPublish, "QoS 3")
	}
	if p.qos == 0 && p.dup {
		return p, protoErr(pktPublish, "DUP set on a QoS 0 message")
	}
	if len(body) < 2 {
		return p, protoErr(pktPublish, "%d bytes: no room for the topic length", len(body))
	}
	n := int(body[0])<<8 | int(body[1])
	if 2+n > len(body) {
		return p, protoErr(pktPublish, "topic length %d beyond the packet's %d bytes", n, len(body))
	}
	p.topic = body[2 : 2+n]
	rest := body[2+n:]
	if p.qos > 0 {
		if len(rest) < 2 {
			return p, protoErr(pktPublish, "no packet identifier")
		}
		p.id = uint16(rest[0])<<8 | uint16(rest[1])
		if p.id == 0 {
			return p, protoErr(pktPublish, "packet identifier 0")
		}
		rest = rest[2:]
	}
	p.payload = rest
	return p, nil
}

// checkTopic checks a received topic name: not empty, UTF-8 without U+0000,
// no wildcards (MQTT 3.1.1 sections 1.5.3 and 4.7).
func checkTopic(t []byte) error {
	if len(t) == 0 {
		return protoErr(pktPublish, "empty topic")
	}
	for _, c := range t {
		if c == 0 || c == '+' || c == '#' {
			return protoErr(pktPublish, "topic %q holds %q", truncate(t), c)
		}
	}
	if !utf8.Valid(t) {
		return protoErr(pktPublish, "topic %q is not UTF-8", truncate(t))
	}
	return nil
}

func truncate(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}

// connack is a decoded CONNACK.
type connack struct {
	sessionPresent bool
	code           byte
}

func decodeConnack(flags byte, body []byte) (connack, error) {
	if flags != 0 || len(body) != 2 {
		return connack{}, protoErr(pktConnack, "flags %#x, %d bytes (want 0 and 2)", flags, len(body))
	}
	if body[0]&^1 != 0 {
		return connack{}, protoErr(pktConnack, "reserved acknowledge flags %#x", body[0])
	}
	return connack{sessionPresent: body[0]&1 != 0, code: body[1]}, nil
}

// connackText is the meaning of CONNACK's return codes (section 3.2.2.3).
func connackText(code byte) string {
	switch code {
	case 0:
		return "accepted"
	case 1:
		return "unacceptable protocol version"
	case 2:
		return "client identifier rejected"
	case 3:
		return "server unavailable"
	case 4:
		return "bad user name or password"
	case 5:
		return "not authorized"
	}
	return fmt.Sprintf("return code %d", code)
}

// decodeSuback returns a SUBACK's packet identifier and return codes.
func decodeSuback(flags byte, body []byte) (uint16, []byte, error) {
	if flags != 0 || len(body) < 3 {
		return 0, nil, protoErr(pktSuback, "flags %#x, %d bytes", flags, len(body))
	}
	codes := body[2:]
	for _, c := range codes {
		if c > 2 && c != 0x80 {
			return 0, nil, protoErr(pktSuback, "return code %#x", c)
		}
	}
	return uint16(body[0])<<8 | uint16(body[1]), codes, nil
}

// appendRemaining appends the remaining length n.
func appendRemaining(b []byte, n int) []byte {
	for {
		d := byte(n & 0x7f)
		n >>= 7
		if n > 0 {
			d |= 0x80
		}
		b = append(b, d)
		if n == 0 {
			return b
		}
	}
}

func appendString(b []byte, s string) []byte {
	return append(append(b, byte(len(s)>>8), byte(len(s))), s...)
}

// connectOptions are the fields of a CONNECT packet.
type connectOptions struct {
	clientID           string
	username, password string
	cleanSession       bool
	keepAlive          uint16 // seconds
}

// appendConnect appends a CONNECT packet (protocol level 4: MQTT 3.1.1).
func appendConnect(b []byte, o connectOptions) ([]byte, error) {
	for _, s := range []string{o.clientID, o.username, o.password} {
		if len(s) > 65535 {
			return b, fmt.Errorf("mqtt: connect field of %d bytes", len(s))
		}
	}
	var flags byte
	n := 10 + 2 + len(o.clientID)
	if o.username != "" {
		flags |= 0x80
		n += 2 + len(o.username)
	}
	if o.password != "" {
		flags |= 0x40
		n += 2 + len(o.password)
	}
	if o.cleanSession {
		flags |= 0x02
	}
	b = appendRemaining(append(b, pktConnect<<4), n)
	b = appendString(b, "MQTT")
	b = append(b, 4, flags, byte(o.keepAlive>>8), byte(o.keepAlive))
	b = appendString(b, o.clientID)
	if o.username != "" {
		b = appendString(b, o.username)
	}
	if o.password != "" {
		b = appendString(b, o.password)
	}
	return b, nil
}

// appendSubscribe appends a SUBSCRIBE packet for filters at qos.
func appendSubscribe(b []byte, id uint16, filters []string, qos byte) ([]byte, error) {
	n := 2
	for _, f := range filters {
		if f == "" || len(f) > 65535 {
			return b, fmt.Errorf("mqtt: bad topic filter %q", f)
		}
		n += 2 + len(f) + 1
	}
	b = appendRemaining(append(b, pktSubscribe<<4|2), n)
	b = append(b, byte(id>>8), byte(id))
	for _, f := range filters {
		b = append(appendString(b, f), qos)
	}
	return b, nil
}

// appendPublish appends a PUBLISH packet (the tests' fake brokers use it).
func appendPublish(b []byte, p publishPacket) []byte {
	flags := p.qos << 1
	if p.dup {
		flags |= 8
	}
	if p.retain {
		flags |= 1
	}
	n := 2 + len(p.topic) + len(p.payload)
	if p.qos > 0 {
		n += 2
	}
	b = appendRemaining(append(b, pktPublish<<4|flags), n)
	b = append(append(b, byte(len(p.topic)>>8), byte(len(p.topic))), p.topic...)
	if p.qos > 0 {
		b = append(b, byte(p.id>>8), byte(p.id))
	}
	return append(b, p.payload...)
}
