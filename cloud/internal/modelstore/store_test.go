package modelstore

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/outpost-iot/outpost/cloud/internal/api"
	"github.com/outpost-iot/outpost/cloud/internal/streams"
	"github.com/outpost-iot/outpost/models/manifest"
	tflwrite "github.com/outpost-iot/outpost/models/tflite/write"
	"github.com/outpost-iot/outpost/shared/modelpkg"
	"github.com/outpost-iot/outpost/shared/names"
	"github.com/outpost-iot/outpost/shared/testenv"
)

// corpus reads a model of models/testdata/tflite.
func corpus(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "models", "testdata", "tflite", name, "model.tflite"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// unsupportedOpModel is a well-formed model whose only operator (CUMSUM)
// the runtime does not implement.
func unsupportedOpModel(t testing.TB) []byte {
	t.Helper()
	b := tflwrite.New("cumsum")
	x := b.Input("x", tflwrite.Float32, []int{1, 4}, nil)
	axis := b.ConstInt32("axis", []int{}, nil, []int32{1})
	y := b.Tensor("y", tflwrite.Float32, []int{1, 4}, nil)
	b.Op(tflwrite.Op(128), []tflwrite.TensorID{x, axis}, []tflwrite.TensorID{y}, nil)
	b.Outputs(y)
	raw, err := b.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestCheck(t *testing.T) {
	i8, f32 := corpus(t, "hello_world_int8"), corpus(t, "hello_world_float")
	rnd := make([]byte, 4096)
	r := rand.New(rand.NewPCG(3, 4))
	for i := range rnd {
		rnd[i] = byte(r.Uint32())
	}
	ok := []struct {
		name, role string
		model      []byte
	}{
		{"int8 as edge", modelpkg.RoleEdge, i8},
		{"float as cloud", modelpkg.RoleCloud, f32},
	}
	for _, c := range ok {
		rep, err := Check(c.model, c.role)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if len(rep.Inputs) != 1 || len(rep.Operators) == 0 || !strings.HasPrefix(rep.Operators[0], "FULLY_CONNECTED×") {
			t.Errorf("%s: report %+v", c.name, rep)
		}
	}
	refused := []struct {
		name, role string
		model      []byte
		reason     string
	}{
		{"float as edge", modelpkg.RoleEdge, f32, "must be integer-quantised"},
		{"int8 as cloud", modelpkg.RoleCloud, i8, "must take and give float32"},
		{"truncated", modelpkg.RoleEdge, i8[:len(i8)/2], "tflite:"},
		{"random bytes", modelpkg.RoleEdge, rnd, "tflite:"},
		{"empty", modelpkg.RoleEdge, nil, "tflite:"},
		{"unsupported op", modelpkg.RoleCloud, unsupportedOpModel(t), "operator 0 uses CUMSUM (builtin 128), which this runtime does not implement"},
	}
	for _, c := range refused {
		_, err := Check(c.model, c.role)
		if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), c.reason) || !strings.HasPrefix(err.Error(), "model refused: ") {
			t.Errorf("%s: err %v, want a refusal saying %q", c.name, err, c.reason)
		}
	}
}

type env struct {
	ns  *testenv.NATS
	js  jetstream.JetStream
	st  *Store
	c   *api.Client
	key ed25519.PrivateKey
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newKey(seed byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
}

// start runs a store behind the real API service on an embedded NATS.
func start(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	e := &env{ns: testenv.StartNATS(t), key: newKey(1)}
	nc, err := nats.Connect(e.ns.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	if e.js, err = jetstream.New(nc); err != nil {
		t.Fatal(err)
	}
	if err := streams.Ensure(ctx, e.js); err != nil {
		t.Fatal(err)
	}
	if e.st, err = Open(ctx, e.js, Config{Key: e.key, Logger: quiet()}); err != nil {
		t.Fatal(err)
	}
	svc, err := api.StartService(nc, api.ServiceConfig{Models: e.st, Logger: quiet(), Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Stop() })
	cnc, err := nats.Connect(e.ns.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cnc.Close)
	e.c = api.NewClient(cnc)
	return e
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func wantCode(t *testing.T, what string, err error, code, substr string) {
	t.Helper()
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Code != code || !strings.Contains(ae.Message, substr) {
		t.Errorf("%s: err %v, want code %s with %q", what, err, code, substr)
	}
}

func TestPushListShowPullDelete(t *testing.T) {
	e := start(t)
	ctx := ctxT(t)
	i8, f32 := corpus(t, "hello_world_int8"), corpus(t, "hello_world_float")
	extra := json.RawMessage(`{"window":1,"features":1,"low":0.5,"high":0.9,"normalisation":"window-z"}`)
	d, err := e.c.PushModel(ctx, i8, api.ModelPushRequest{Name: "hello", Version: 1, Role: "edge", Manifest: extra})
	if err != nil {
		t.Fatal(err)
	}
	if d.ID() != "hello@1" || d.Role != modelpkg.RoleEdge || d.SHA256 != modelpkg.SumHex(i8) || d.Size != int64(len(i8)) || !d.SignatureOK {
		t.Fatalf("push reply %+v", d)
	}
	if _, err := e.c.PushModel(ctx, f32, api.ModelPushRequest{Name: "hello-float", Version: 3, Role: "cloud"}); err != nil {
		t.Fatal(err)
	}
	// A second version of hello, to resolve "latest".
	if _, err := e.c.PushModel(ctx, i8, api.ModelPushRequest{Name: "hello", Version: 2}); err != nil {
		t.Fatal(err)
	}

	list, err := e.c.Models(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range list {
		ids = append(ids, m.ID()+":"+m.Role)
	}
	if got := strings.Join(ids, " "); got != "hello@1:edge-int8 hello@2:edge-int8 hello-float@3:cloud-float" {
		t.Fatalf("list = %s", got)
	}

	show, err := e.c.ShowModel(ctx, api.ModelRef{Name: "hello", Version: 1})
	if err != nil {
		t.Fatal(err)
	}
	var man map[string]any
	if err := json.Unmarshal(show.Manifest, &man); err != nil {
		t.Fatal(err)
	}
	if !show.SignatureOK || man["window"] != float64(1) || man["normalisation"] != "window-z" || man["sha256"] != modelpkg.SumHex(i8) || man["name"] != "hello" {
		t.Fatalf("show = %+v manifest %s", show, show.Manifest)
	}

	key, err := e.c.PublicKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := modelpkg.ParsePublicKey(key.PublicKey)
	if err != nil || !pub.Equal(e.key.Public()) {
		t.Fatalf("keys.public = %+v, %v", key, err)
	}
	for _, c := range []struct {
		ref  api.ModelRef
		want []byte
		id   string
	}{{api.ModelRef{Name: "hello", Version: 1}, i8, "hello@1"}, {api.ModelRef{Name: "hello"}, i8, "hello@2"}, {api.ModelRef{Name: "hello-float", Version: 3}, f32, "hello-float@3"}} {
		mi, blob, err := e.c.PullModel(ctx, c.ref)
		if err != nil {
			t.Fatal(err)
		}
		pkg, err := modelpkg.Decode(blob)
		if err != nil {
			t.Fatal(err)
		}
		h, err := modelpkg.Verify(pkg, pub)
		if err != nil {
			t.Fatalf("%s: %v", c.ref, err)
		}
		if mi.ID() != c.id || h.ID() != c.id || !bytes.Equal(pkg.Model, c.want) || uint64(len(blob)) != mi.PackageSize {
			t.Fatalf("pull %s: got %s / %s, %d model bytes", c.ref, mi.ID(), h.ID(), len(pkg.Model))
		}
	}

	// Overwrite needs force.
	_, err = e.c.PushModel(ctx, i8, api.ModelPushRequest{Name: "hello", Version: 1})
	wantCode(t, "push existing", err, api.CodeConflict, "--force")
	if _, err := e.c.PushModel(ctx, i8, api.ModelPushRequest{Name: "hello", Version: 1, Force: true, Manifest: json.RawMessage(`{"note":"again"}`)}); err != nil {
		t.Fatalf("forced push: %v", err)
	}

	// Not found, bad requests.
	_, err = e.c.ShowModel(ctx, api.ModelRef{Name: "nope", Version: 1})
	wantCode(t, "show missing", err, api.CodeNotFound, "fleet models list")
	_, err = e.c.PushModel(ctx, i8, api.ModelPushRequest{Name: "bad/name", Version: 1})
	wantCode(t, "bad name", err, api.CodeBadRequest, "not allowed")
	_, err = e.c.PushModel(ctx, i8, api.ModelPushRequest{Name: "x", Version: 1, Role: "gpu"})
	wantCode(t, "bad role", err, api.CodeBadRequest, "role")
	_, err = e.c.PushModel(ctx, i8, api.ModelPushRequest{Name: "x", Version: 1, Manifest: json.RawMessage(`{"name":"y"}`)})
	wantCode(t, "conflicting manifest", err, api.CodeBadRequest, "manifest says name")
	_, err = e.c.DeleteModel(ctx, api.ModelRef{Name: "hello"})
	wantCode(t, "delete without version", err, api.CodeBadRequest, "name the version")

	// Delete.
	if _, err := e.c.DeleteModel(ctx, api.ModelRef{Name: "hello", Version: 2}); err != nil {
		t.Fatal(err)
	}
	_, err = e.c.DeleteModel(ctx, api.ModelRef{Name: "hello", Version: 2})
	wantCode(t, "delete again", err, api.CodeNotFound, "hello@2")
	if list, _ = e.c.Models(ctx); len(list) != 2 {
		t.Fatalf("after delete: %d models", len(list))
	}

	// No uploads are left behind.
	obj, err := e.js.ObjectStore(ctx, names.ObjectModels)
	if err != nil {
		t.Fatal(err)
	}
	infos, _ := obj.List(ctx)
	for _, in := range infos {
		if strings.HasPrefix(in.Name, api.UploadPrefix) {
			t.Errorf("upload %s left in the store", in.Name)
		}
	}
}

func TestPushRefusesCorruptFiles(t *testing.T) {
	e := start(t)
	ctx := ctxT(t)
	i8 := corpus(t, "hello_world_int8")
	rnd := make([]byte, 1000)
	for i := range rnd {
		rnd[i] = byte(i * 7)
	}
	for _, c := range []struct {
		name   string
		model  []byte
		role   string
		reason string
	}{
		{"truncated", i8[:1000], "edge", "model refused: tflite:"},
		{"random", rnd, "edge", "model refused: tflite:"},
		{"unsupported op", unsupportedOpModel(t), "cloud", "model refused: tflite: operator 0 uses CUMSUM (builtin 128), which this runtime does not implement"},
		{"float as edge", corpus(t, "hello_world_float"), "edge", "must be integer-quantised"},
		{"empty", []byte{}, "edge", "the file is empty"},
	} {
		_, err := e.c.PushModel(ctx, c.model, api.ModelPushRequest{Name: "bad", Version: 1, Role: c.role})
		wantCode(t, c.name, err, api.CodeRefused, c.reason)
	}
	if list, err := e.c.Models(ctx); err != nil || len(list) != 0 {
		t.Fatalf("refused models listed: %v %v", list, err)
	}
}

func TestPushLargeModel(t *testing.T) {
	e := start(t)
	ctx := ctxT(t)
	big := corpus(t, "person_detect") // ~300 KB
	d, err := e.c.PushModel(ctx, big, api.ModelPushRequest{Name: "person", Version: 1, Role: "edge"})
	if err != nil {
		t.Fatal(err)
	}
	_, blob, err := e.c.PullModel(ctx, api.ModelRef{Name: "person", Version: 1})
	if err != nil {
		t.Fatal(err)
	}
	pkg, err := modelpkg.Decode(blob)
	if err != nil || !bytes.Equal(pkg.Model, big) || d.Size != int64(len(big)) {
		t.Fatalf("pulled %d bytes, %v", len(blob), err)
	}
	// Larger than the store's limit: refused before it is read.
	small, err := Open(ctx, e.js, Config{Key: e.key, MaxModelBytes: 1000, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	obj, _ := e.js.ObjectStore(ctx, names.ObjectModels)
	if _, err := obj.PutBytes(ctx, api.UploadPrefix+"big", big); err != nil {
		t.Fatal(err)
	}
	_, err = small.Push(ctx, api.ModelPushRequest{Name: "person", Version: 2, Upload: api.UploadPrefix + "big"})
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "more than the 1000") {
		t.Fatalf("oversized push: %v", err)
	}
}

// TestTamperedPackage flips bytes of a stored package: show reports the
// failed check and Verify fails with the matching error.
func TestTamperedPackage(t *testing.T) {
	e := start(t)
	ctx := ctxT(t)
	i8 := corpus(t, "hello_world_int8")
	if _, err := e.c.PushModel(ctx, i8, api.ModelPushRequest{Name: "hello", Version: 1}); err != nil {
		t.Fatal(err)
	}
	obj, err := e.js.ObjectStore(ctx, names.ObjectModels)
	if err != nil {
		t.Fatal(err)
	}
	orig, err := obj.GetBytes(ctx, "hello/1")
	if err != nil {
		t.Fatal(err)
	}
	info, err := obj.GetInfo(ctx, "hello/1")
	if err != nil {
		t.Fatal(err)
	}
	pub := e.key.Public().(ed25519.PublicKey)
	for _, c := range []struct {
		name string
		at   int
		want error
	}{
		{"model byte", len(orig) - 100, modelpkg.ErrHashMismatch},
		{"manifest byte", modelpkg.HeaderSize + 5, modelpkg.ErrBadSignature},
		{"signature byte", 30, modelpkg.ErrBadSignature},
	} {
		bad := append([]byte(nil), orig...)
		bad[c.at] ^= 0x01
		if _, err := obj.Put(ctx, info.ObjectMeta, bytes.NewReader(bad)); err != nil {
			t.Fatal(err)
		}
		show, err := e.c.ShowModel(ctx, api.ModelRef{Name: "hello", Version: 1})
		if err != nil {
			t.Fatal(err)
		}
		if show.SignatureOK || show.VerifyError == "" {
			t.Errorf("%s: show says the tampered package verifies", c.name)
		}
		_, blob, err := e.c.PullModel(ctx, api.ModelRef{Name: "hello", Version: 1})
		if err != nil {
			t.Fatal(err)
		}
		pkg, err := modelpkg.Decode(blob)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := modelpkg.Verify(pkg, pub); !errors.Is(err, c.want) {
			t.Errorf("%s: Verify = %v, want %v", c.name, err, c.want)
		}
	}
}

func TestKeyMismatchAcrossReplicas(t *testing.T) {
	e := start(t)
	ctx := ctxT(t)
	if _, err := Open(ctx, e.js, Config{Key: newKey(2), Logger: quiet()}); !errors.Is(err, ErrKeyMismatch) || !strings.Contains(err.Error(), "--signing-key") {
		t.Fatalf("second key: %v, want ErrKeyMismatch", err)
	}
	if _, err := Open(ctx, e.js, Config{Key: newKey(1), Logger: quiet()}); err != nil {
		t.Fatalf("same key: %v", err)
	}
}

func TestParseModelRef(t *testing.T) {
	for in, want := range map[string]api.ModelRef{"vib@2": {Name: "vib", Version: 2}, "vib": {Name: "vib"}, "vib@latest": {Name: "vib"}} {
		if got, err := api.ParseModelRef(in); err != nil || got != want {
			t.Errorf("%q: %+v %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "@2", "vib@0", "vib@x"} {
		if _, err := api.ParseModelRef(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestStockModelsWithManifests pushes the stock models with their
// models/manifest files: the package's manifest keeps every field, and
// models/manifest parses and validates it.
func TestStockModelsWithManifests(t *testing.T) {
	e := start(t)
	ctx := ctxT(t)
	stock := filepath.Join("..", "..", "..", "models", "stock")
	pub := e.key.Public().(ed25519.PublicKey)
	for _, c := range []struct{ name, role string }{{"ae-edge", "edge"}, {"forecast-cloud", "cloud"}} {
		model, err := os.ReadFile(filepath.Join(stock, c.name+".tflite"))
		if err != nil {
			t.Skipf("stock model: %v", err)
		}
		manText, err := os.ReadFile(filepath.Join(stock, c.name+".json"))
		if err != nil {
			t.Skipf("stock manifest: %v", err)
		}
		want, err := manifest.Parse(manText)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.c.PushModel(ctx, model, api.ModelPushRequest{Name: want.Name, Version: want.Version, Role: c.role, Manifest: manText}); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		_, blob, err := e.c.PullModel(ctx, api.ModelRef{Name: want.Name, Version: want.Version})
		if err != nil {
			t.Fatal(err)
		}
		pkg, err := modelpkg.Decode(blob)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := modelpkg.Verify(pkg, pub); err != nil {
			t.Fatal(err)
		}
		got, err := manifest.Parse(pkg.Manifest)
		if err != nil {
			t.Fatalf("%s: the package's manifest does not parse as models/manifest: %v", c.name, err)
		}
		if err := got.Check(pkg.Model); err != nil {
			t.Fatal(err)
		}
		if got.Window != want.Window || got.Low != want.Low || got.High != want.High || got.Kind != want.Kind || got.Role != want.Role {
			t.Fatalf("%s: manifest changed in the package: %+v, want %+v", c.name, got, want)
		}
	}
}
