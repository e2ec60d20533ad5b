package wire

import (
	"encoding/json"
	"testing"
	"time"
)

func TestParseModelID(t *testing.T) {
	for _, c := range []struct {
		in      string
		name    string
		version int
		ok      bool
	}{
		{"vib@2", "vib", 2, true},
		{"a@b@10", "a@b", 10, true},
		{"vib", "", 0, false},
		{"vib@", "", 0, false},
		{"@2", "", 0, false},
		{"vib@0", "", 0, false},
		{"vib@x", "", 0, false},
	} {
		name, v, err := ParseModelID(c.in)
		if (err == nil) != c.ok || name != c.name || v != c.version {
			t.Errorf("ParseModelID(%q) = %q %d %v", c.in, name, v, err)
		}
		if c.ok && ModelID(name, v) != c.in {
			t.Errorf("ModelID(%q, %d) = %q", name, v, ModelID(name, v))
		}
	}
}

// TestDesiredJSON pins the document agents watch.
func TestDesiredJSON(t *testing.T) {
	d := Desired{Revision: 7, Models: map[string]string{"*": "vib@3"}, Config: "generic-sensor.2", ConfigRevision: 2,
		Rollout: "ro-1", Updated: time.Date(2026, 11, 23, 6, 30, 0, 0, time.UTC)}
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"revision":7,"models":{"*":"vib@3"},"config":"generic-sensor.2","config_revision":2,"rollout":"ro-1","updated":"2026-11-23T06:30:00Z"}`
	if string(b) != want {
		t.Fatalf("got  %s\nwant %s", b, want)
	}
	var back Desired
	if err := json.Unmarshal(b, &back); err != nil || back.Models["*"] != "vib@3" || back.ConfigRevision != 2 {
		t.Fatalf("round trip: %v %+v", err, back)
	}
}
