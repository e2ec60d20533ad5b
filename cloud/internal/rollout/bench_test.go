package rollout_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/cloud/internal/api"
)

// BenchmarkRolloutAgents measures the seconds from rollout start until N
// simulated gateways (each with its own NATS connection, watching its
// desired state, fetching, verifying and test-invoking the package) run the
// new model, without canary, in the default batches (a quarter at a time).
//
//	go test ./internal/rollout -run XXX -bench RolloutAgents -benchtime 1x
func BenchmarkRolloutAgents(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("agents=%d", n), func(b *testing.B) {
			e := startEnv(b)
			var swapped atomic.Int64
			agents := e.startAgentsWith(b, "gw", "", n, 2*time.Second, func(string, string) { swapped.Add(1) })
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				swapped.Store(0)
				model := modelGood
				if i%2 == 1 {
					model = modelOld
				}
				start := time.Now()
				r, err := e.client.StartRollout(context.Background(), api.RolloutStartRequest{Model: model, To: "all", Canary: "0"})
				if err != nil {
					b.Fatal(err)
				}
				waitFor(b, 120*time.Second, "all agents swapped", func() bool { return swapped.Load() == int64(n) })
				ran := time.Since(start)
				r = e.waitState(b, r.ID, 60*time.Second, api.RolloutSucceeded, api.RolloutRolledBack)
				done := time.Since(start)
				if r.State != api.RolloutSucceeded || modelsOf(agents)[model] != n {
					b.Fatalf("rollout %s: %s %q", r.ID, r.State, r.Reason)
				}
				b.ReportMetric(ran.Seconds(), "s-to-all-running")
				b.ReportMetric(done.Seconds(), "s-to-succeeded")
			}
		})
	}
}
