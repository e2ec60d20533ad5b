package fleet

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/cloud/internal/api"
	"github.com/outpost-iot/outpost/shared/names"
)

// TestFleetModelsHistory lists decisions as the learning loop records them
// in names.BucketModelHistory (the learning loop itself is tested in
// cloud/internal/learn).
func TestFleetModelsHistory(t *testing.T) {
	svc, js := startService(t)
	ctx := context.Background()
	fl := func(args ...string) (string, string, error) {
		return run(ctx, append([]string{"--nats", svc.NATSURL()}, args...)...)
	}
	out, errText, err := fl("models", "history")
	if err != nil || !strings.Contains(errText, "no learning decisions yet") {
		t.Fatalf("empty history: %v %q %q", err, out, errText)
	}
	kv, err := js.KeyValue(ctx, names.BucketModelHistory)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)
	for i, d := range []api.ModelDecision{
		{Kind: api.DecisionDrift, Stream: "sensors/m1/vib", Champion: "ae-edge@1", Drift: &api.DriftReport{Test: "ks", Feature: "window_mean", Statistic: 1, Critical: 0.4}},
		{Kind: api.DecisionPromoted, Stream: "sensors/m1/vib", Champion: "ae-edge@1", Challenger: "ae-edge@2", Rollout: "ro-1",
			Compare: &api.Comparison{Normal: 25, ChampionMeanError: 0.97, ChallengerMeanError: 0.19, ChampionFalseAlarms: 1, Better: true}, Reason: "better — numbers"},
		{Kind: api.DecisionRejected, Stream: "sensors/m2/temp", Champion: "other@3", Challenger: "other@4", Reason: "not better: mean error not 10% lower — numbers"},
	} {
		d.Time = t0.Add(time.Duration(i) * time.Minute)
		d.ID = strings.Repeat("0", 3) + d.Time.Format("20060102150405")
		b, _ := json.Marshal(d)
		if _, err := kv.Create(ctx, d.ID, b); err != nil {
			t.Fatal(err)
		}
	}
	out, _, err = fl("models", "history", "ae-edge")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.Contains(lines[1], "promoted") || !strings.Contains(lines[1], "0.9700→0.1900") ||
		!strings.Contains(lines[1], "100.0%→0.0%") || !strings.Contains(lines[1], "ro-1") || !strings.Contains(lines[2], "drift") {
		t.Fatalf("history table (newest first, ae-edge only):\n%s", out)
	}
	out, _, err = fl("-o", "json", "models", "history")
	if err != nil {
		t.Fatal(err)
	}
	var ds []api.ModelDecision
	if err := json.Unmarshal([]byte(out), &ds); err != nil || len(ds) != 3 || ds[0].Challenger != "other@4" || ds[1].Compare == nil || ds[1].Compare.Normal != 25 {
		t.Fatalf("history -o json: %v\n%s", err, out)
	}
	if _, _, err := fl("models", "approve", "ae-edge@2"); err == nil || !strings.Contains(err.Error(), "no challenger ae-edge@2 awaits approval") {
		t.Fatalf("approve of a promoted model: %v", err)
	}
	if _, _, err := fl("models", "approve", "ae-edge"); err == nil || !strings.Contains(err.Error(), "name the version") {
		t.Fatalf("approve without a version: %v", err)
	}
}
