package profile

import (
	"strings"
	"testing"
	"time"
)

func TestUplinkSampleBudget(t *testing.T) {
	base := "agent: {id: gw-1}\nmqtt: {url: tcp://127.0.0.1:1883}\n"
	p, err := Parse([]byte(base))
	if err != nil {
		t.Fatal(err)
	}
	d := p.Defaults()
	if d.Uplink.SampleBudget == nil || *d.Uplink.SampleBudget != DefaultSampleBudget ||
		d.Uplink.SampleInterval != DefaultSampleInterval || d.Uplink.SampleWindows != DefaultSampleWindows {
		t.Fatalf("defaults: %+v", d.Uplink)
	}
	p, err = Parse([]byte(base + "uplink: {sample_budget: 0, sample_interval: 1m, sample_windows: 3}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	d = p.Defaults()
	if *d.Uplink.SampleBudget != 0 || d.Uplink.SampleInterval != time.Minute || d.Uplink.SampleWindows != 3 {
		t.Fatalf("explicit: %+v (0 must stay off)", d.Uplink)
	}
	for _, bad := range []string{"sample_budget: -1", "sample_interval: -1s", "sample_windows: 5000"} {
		err := Check([]byte(base + "uplink: {" + bad + "}\n"))
		if err == nil || !strings.Contains(err.Error(), "uplink."+strings.Split(bad, ":")[0]) {
			t.Errorf("%s: got %v, want a problem naming uplink.%s", bad, err, strings.Split(bad, ":")[0])
		}
	}
}
