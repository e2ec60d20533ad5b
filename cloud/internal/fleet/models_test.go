package fleet

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/cloud/internal/api"
	"github.com/outpost-iot/outpost/cloud/internal/keys"
	"github.com/outpost-iot/outpost/cloud/internal/service"
	"github.com/outpost-iot/outpost/shared/modelpkg"
)

func corpusFile(t *testing.T, name string) string {
	t.Helper()
	p := filepath.Join("..", "..", "..", "models", "testdata", "tflite", name, "model.tflite")
	if _, err := os.Stat(p); err != nil {
		t.Fatal(err)
	}
	return p
}

func startServiceIn(t *testing.T, dir string) *service.Service {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	svc, err := service.Start(ctx, service.Config{
		DataDir: dir, NATSListen: "127.0.0.1:0", HTTPListen: "127.0.0.1:0",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatalf("start service: %v", err)
	}
	t.Cleanup(svc.Stop)
	return svc
}

func TestFleetModels(t *testing.T) {
	dir := t.TempDir()
	svc := startServiceIn(t, dir)
	url := svc.NATSURL()
	ctx := context.Background()
	fl := func(args ...string) (string, string, error) {
		return run(ctx, append([]string{"--nats", url}, args...)...)
	}

	keyText, _, err := fl("keys", "public")
	if err != nil {
		t.Fatal(err)
	}
	pub, err := modelpkg.ParsePublicKey(keyText)
	if err != nil {
		t.Fatalf("keys public printed %q: %v", keyText, err)
	}

	i8, f32 := corpusFile(t, "hello_world_int8"), corpusFile(t, "hello_world_float")
	manifest := filepath.Join(t.TempDir(), "manifest.json")
	if err := os.WriteFile(manifest, []byte(`{"window":1,"low":0.5,"high":0.9,"output":"sine"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	out, _, err := fl("-o", "json", "models", "push", i8, "--name", "hello", "--version", "1", "--role", "edge", "--manifest", manifest)
	if err != nil {
		t.Fatal(err)
	}
	var pushed api.ModelDetail
	if err := json.Unmarshal([]byte(out), &pushed); err != nil || pushed.ID() != "hello@1" || !pushed.SignatureOK {
		t.Fatalf("push -o json: %v %s", err, out)
	}
	if out, _, err = fl("models", "push", f32, "--name", "hello-float", "--version", "1", "--role", "cloud"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "signature") || !strings.Contains(out, "cloud-float") {
		t.Errorf("push table:\n%s", out)
	}

	out, _, err = fl("models", "list", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var list []api.ModelInfo
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list) != 2 || list[0].ID() != "hello@1" || list[1].ID() != "hello-float@1" {
		t.Fatalf("list -o json: %v %s", err, out)
	}
	out, _, err = fl("models", "list")
	if err != nil || !strings.Contains(out, "hello@1") || !strings.Contains(out, "edge-int8") {
		t.Fatalf("list table: %v\n%s", err, out)
	}

	out, _, err = fl("-o", "json", "models", "show", "hello@1")
	if err != nil {
		t.Fatal(err)
	}
	var show api.ModelDetail
	if err := json.Unmarshal([]byte(out), &show); err != nil || !show.SignatureOK || !strings.Contains(string(show.Manifest), `"output": "sine"`) {
		t.Fatalf("show -o json: %v %s", err, out)
	}

	// Pull the package and the .tflite; both byte-identical and verified.
	pkgFile := filepath.Join(t.TempDir(), "hello.opkg")
	if _, errOut, err := fl("models", "pull", "hello@1", "-o", pkgFile); err != nil || !strings.Contains(errOut, "signature ok") {
		t.Fatalf("pull: %v %s", err, errOut)
	}
	blob, err := os.ReadFile(pkgFile)
	if err != nil {
		t.Fatal(err)
	}
	pkg, err := modelpkg.Decode(blob)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := modelpkg.Verify(pkg, pub); err != nil {
		t.Fatalf("pulled package does not verify with `fleet keys public`: %v", err)
	}
	orig, _ := os.ReadFile(i8)
	if !bytes.Equal(pkg.Model, orig) {
		t.Fatal("pulled model differs from the pushed file")
	}
	// fleet models verify: with the key from `fleet keys public`, with the
	// service's key, and a tampered copy.
	if out, _, err := fl("models", "verify", pkgFile, "--key", strings.TrimSpace(keyText)); err != nil || !strings.Contains(out, "hello@1: ok") {
		t.Fatalf("verify: %v %s", err, out)
	}
	if out, _, err := fl("-o", "json", "models", "verify", pkgFile); err != nil || !strings.Contains(out, `"ok": true`) {
		t.Fatalf("verify -o json: %v %s", err, out)
	}
	tampered := filepath.Join(t.TempDir(), "tampered.opkg")
	blob[len(blob)-10] ^= 0x40
	if err := os.WriteFile(tampered, blob, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := fl("models", "verify", tampered); err == nil || !strings.Contains(err.Error(), "hash mismatch") {
		t.Errorf("verify tampered: %v", err)
	}
	blob[len(blob)-10] ^= 0x40
	tfl := filepath.Join(t.TempDir(), "f.tflite")
	if _, _, err := fl("models", "pull", "hello-float", "--tflite", "-o", tfl); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(tfl)
	want, _ := os.ReadFile(f32)
	if !bytes.Equal(got, want) {
		t.Fatal("pulled .tflite differs from the pushed file")
	}

	// Refusals carry the reason; existing versions need --force.
	bad := filepath.Join(t.TempDir(), "bad.tflite")
	if err := os.WriteFile(bad, orig[:len(orig)/3], 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := fl("models", "push", bad, "--name", "bad", "--version", "1"); err == nil || !strings.Contains(err.Error(), "model refused: tflite:") || !strings.Contains(err.Error(), "code 422") {
		t.Errorf("truncated push: %v", err)
	}
	if _, _, err := fl("models", "push", i8, "--name", "hello", "--version", "1"); err == nil || !strings.Contains(err.Error(), "--force") {
		t.Errorf("push over an existing version: %v", err)
	}
	if _, _, err := fl("models", "push", i8, "--name", "hello", "--version", "1", "--force"); err != nil {
		t.Errorf("forced push: %v", err)
	}

	// Delete.
	if out, _, err = fl("-o", "json", "models", "delete", "hello-float@1"); err != nil || !strings.Contains(out, `"hello-float"`) {
		t.Fatalf("delete: %v %s", err, out)
	}
	if _, _, err := fl("models", "show", "hello-float@1"); err == nil || !strings.Contains(err.Error(), "code 404") {
		t.Errorf("show deleted: %v", err)
	}

	// The key persists across a restart on the same data directory.
	keyFile := filepath.Join(dir, keys.DefaultFile)
	fi, err := os.Stat(keyFile)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file %s: %v %v", keyFile, fi, err)
	}
	svc.Stop()
	svc2 := startServiceIn(t, dir)
	out, _, err = run(ctx, "--nats", svc2.NATSURL(), "-o", "json", "keys", "public")
	if err != nil {
		t.Fatal(err)
	}
	var ki api.KeyInfo
	if err := json.Unmarshal([]byte(out), &ki); err != nil || ki.PublicKey != strings.TrimSpace(keyText) {
		t.Fatalf("key after restart %q, before %q (%v)", ki.PublicKey, keyText, err)
	}
	// And the packages stored before the restart still verify.
	out, _, err = run(ctx, "--nats", svc2.NATSURL(), "-o", "json", "models", "show", "hello@1")
	if err != nil || !strings.Contains(out, `"signature_ok": true`) {
		t.Fatalf("show after restart: %v %s", err, out)
	}
}
