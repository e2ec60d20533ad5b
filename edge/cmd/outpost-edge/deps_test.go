package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDeps keeps the edge binary small: it must not link the NATS server,
// the cloud or training code.
func TestDeps(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		for _, banned := range []string{
			"github.com/nats-io/nats-server",
			"github.com/outpost-iot/outpost/cloud",
			"github.com/outpost-iot/outpost/shared/testenv",
			// Training, evaluation and model-writing code stay off the gateway.
			"github.com/outpost-iot/outpost/models/train",
			"github.com/outpost-iot/outpost/models/eval",
			"github.com/outpost-iot/outpost/models/nab",
			"github.com/outpost-iot/outpost/models/tflite/write",
			"github.com/outpost-iot/outpost/models/cmd",
		} {
			if strings.HasPrefix(pkg, banned) {
				t.Errorf("outpost-edge links %s", pkg)
			}
		}
	}
}
