package profile

import (
	"strings"
	"testing"
)

// TestTrustKey: nats.trust_key must be an ed25519 key in the text form
// `fleet keys public` prints; a bad one is a problem at its path.
func TestTrustKey(t *testing.T) {
	const base = "name: t\nmqtt:\n  url: tcp://127.0.0.1:1883\n  topics:\n    - filter: sensors/#\nnats:\n  url: nats://127.0.0.1:4222\n"
	good := base + "  trust_key: ed25519:ZnRoJBee3OO5LlvDqNcnyvV2V7sFmVyBp6pdgXIsBaQ=\n"
	if err := Check([]byte(good)); err != nil {
		t.Fatalf("good key: %v", err)
	}
	for _, bad := range []string{"ZnRoJBee3OO5LlvDqNcnyvV2V7sFmVyBp6pdgXIsBaQ=", "ed25519:AAAA", "ed25519:not base64!"} {
		err := Check([]byte(base + "  trust_key: \"" + bad + "\"\n"))
		ps := AsProblems(err)
		if len(ps) != 1 || ps[0].Path != "nats.trust_key" || !strings.Contains(ps[0].Msg, "key") {
			t.Fatalf("trust_key %q: %v", bad, err)
		}
	}
}
