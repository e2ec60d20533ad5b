package service

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/cloud/internal/api"
	"github.com/outpost-iot/outpost/cloud/internal/keys"
	"github.com/outpost-iot/outpost/shared/modelpkg"
	"github.com/outpost-iot/outpost/shared/testenv"
)

func httpGet(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// TestModelsHTTPMirror pushes a model over NATS and reads it back through
// the HTTP mirror; the dashboard's routes still answer.
func TestModelsHTTPMirror(t *testing.T) {
	svc := startCfg(t, Config{})
	c := apiClient(t, svc.NATSURL())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	model, err := os.ReadFile(filepath.Join("..", "..", "..", "models", "testdata", "tflite", "hello_world_int8", "model.tflite"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.PushModel(ctx, model, api.ModelPushRequest{Name: "hello", Version: 4}); err != nil {
		t.Fatal(err)
	}
	base := "http://" + svc.HTTPAddr()

	code, body := httpGet(t, base+"/api/v1/models")
	var list []api.ModelInfo
	if code != 200 || json.Unmarshal(body, &list) != nil || len(list) != 1 || list[0].ID() != "hello@4" {
		t.Fatalf("GET /api/v1/models: %d %s", code, body)
	}
	code, body = httpGet(t, base+"/api/v1/models/hello")
	var d api.ModelDetail
	if code != 200 || json.Unmarshal(body, &d) != nil || !d.SignatureOK || d.Version != 4 {
		t.Fatalf("GET /api/v1/models/hello: %d %s", code, body)
	}
	code, body = httpGet(t, base+"/api/v1/keys/public")
	var ki api.KeyInfo
	if code != 200 || json.Unmarshal(body, &ki) != nil {
		t.Fatalf("GET /api/v1/keys/public: %d %s", code, body)
	}
	pub, err := modelpkg.ParsePublicKey(ki.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	code, body = httpGet(t, base+"/api/v1/models/hello/4/package")
	if code != 200 {
		t.Fatalf("GET package: %d %s", code, body)
	}
	pkg, err := modelpkg.Decode(body)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := modelpkg.Verify(pkg, pub); err != nil {
		t.Fatalf("downloaded package: %v", err)
	}
	if code, body = httpGet(t, base+"/api/v1/models/hello/9"); code != 404 {
		t.Errorf("missing version: %d %s", code, body)
	}
	if code, body = httpGet(t, base+"/api/v1/models/hello/x"); code != 400 {
		t.Errorf("bad version: %d %s", code, body)
	}
	if code, _ = httpGet(t, base+"/healthz"); code != 200 {
		t.Errorf("/healthz behind the model routes: %d", code)
	}
	if code, _ = httpGet(t, base+"/api/v1/devices"); code != 200 {
		t.Errorf("/api/v1/devices behind the model routes: %d", code)
	}
}

// TestReplicaSigningKeys: replicas sharing the key file all serve the
// model endpoints; a replica with another key serves none of them, so
// the fleet never sees two keys.
func TestReplicaSigningKeys(t *testing.T) {
	ns := testenv.StartNATS(t)
	shared := filepath.Join(t.TempDir(), "signing.key")
	first := startCfg(t, Config{NATSURL: ns.URL(), SigningKey: shared})
	second := startCfg(t, Config{NATSURL: ns.URL(), SigningKey: shared})
	if first.Models() == nil || second.Models() == nil {
		t.Fatal("replicas sharing the key file: model store disabled")
	}
	other := startCfg(t, Config{NATSURL: ns.URL()}) // its own key in its data dir
	if other.Models() != nil {
		t.Fatal("a replica with another key serves the model store")
	}
	key, err := keys.Load(shared)
	if err != nil {
		t.Fatal(err)
	}
	c := apiClient(t, ns.URL())
	for range 10 { // queue group: any replica may answer; all must agree
		ki, err := c.PublicKey(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if ki.PublicKey != modelpkg.FormatPublicKey(key.Public().(ed25519.PublicKey)) {
			t.Fatalf("keys.public = %s", ki.PublicKey)
		}
	}
}
