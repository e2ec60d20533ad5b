package control

import (
	"testing"

	"github.com/outpost-iot/outpost/models/detect/modelscore"
	"github.com/outpost-iot/outpost/models/stock"
)

// TestTestRunVector: the stock video model (a vector model) passes the
// test run, which steps it with vectors.
func TestTestRunVector(t *testing.T) {
	m, model, err := stock.Load(stock.Video)
	if err != nil {
		t.Fatal(err)
	}
	r, err := modelscore.NewVectorRunner(m, model)
	if err != nil {
		t.Fatal(err)
	}
	if err := Test(r); err != nil {
		t.Fatalf("stock video model: %v", err)
	}
}
