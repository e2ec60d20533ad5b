// Package modelstore is outpost-cloud's model store: it validates model
// files with the runtime the edge runs (Check), signs them with the cloud's
// model-signing key into modelpkg packages and keeps them in the object
// store outpost_models, one object per version named "<name>/<version>".
//
// Objects in the store:
//
//	<name>/<version>         a modelpkg blob (see shared/modelpkg); its
//	                         metadata "outpost-model" holds the api.ModelInfo
//	                         JSON so listing reads no package
//	_uploads/<id>            a .tflite file the fleet CLI put there for a
//	                         push; deleted by the push, or after UploadMaxAge
//	_keys/model-signing.pub  the fleet's public key ("ed25519:<base64>"),
//	                         written by the first replica
//
// Replicas must sign with the same key. At Open a replica compares its key
// with _keys/model-signing.pub; when they differ, Open returns an error
// wrapping ErrKeyMismatch and the service leaves the model endpoints out
// on that replica (the others keep serving them).
//
// Two pushes of the same new version at the same moment race (the object
// store has no create-only put): the last one wins. Pushes are operator
// actions; this is stated, not prevented.
package modelstore

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/outpost-iot/outpost/cloud/internal/api"
	"github.com/outpost-iot/outpost/shared/modelpkg"
	"github.com/outpost-iot/outpost/shared/names"
)

// Errors; the store's errors wrap one of them (and carry an api code).
var (
	// ErrNotFound: no such model or version.
	ErrNotFound = errors.New("model not found")
	// ErrExists: the version is stored already.
	ErrExists = errors.New("model version exists")
	// ErrKeyMismatch: this replica's signing key is not the fleet's.
	ErrKeyMismatch = errors.New("model-signing key differs from the fleet's")
)

// Object names.
const (
	// PublicKeyObject holds the fleet's public key text.
	PublicKeyObject = "_keys/model-signing.pub"
	metaKey         = "outpost-model"
)

// Config configures a Store.
type Config struct {
	// Key is the model-signing key. Required.
	Key ed25519.PrivateKey
	// MaxModelBytes bounds a pushed file; default 32 MiB (the person_detect
	// test model is 300 KB, the stock models a few KB).
	MaxModelBytes int64
	// UploadMaxAge is how long an upload that was never pushed is kept;
	// default 1h.
	UploadMaxAge time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Logger; default slog.Default().
	Logger *slog.Logger
}

// DefaultMaxModelBytes is Config.MaxModelBytes' default.
const DefaultMaxModelBytes = 32 << 20

// Store is the model store.
type Store struct {
	cfg Config
	obj jetstream.ObjectStore
	pub ed25519.PublicKey
}

// Open binds to the outpost_models object store (streams.Ensure creates it)
// and publishes or checks the fleet's public key.
func Open(ctx context.Context, js jetstream.JetStream, cfg Config) (*Store, error) {
	if len(cfg.Key) != ed25519.PrivateKeySize {
		return nil, errors.New("modelstore: no model-signing key")
	}
	if cfg.MaxModelBytes <= 0 {
		cfg.MaxModelBytes = DefaultMaxModelBytes
	}
	if cfg.MaxModelBytes > modelpkg.MaxModelBytes {
		cfg.MaxModelBytes = modelpkg.MaxModelBytes
	}
	if cfg.UploadMaxAge <= 0 {
		cfg.UploadMaxAge = time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	obj, err := js.ObjectStore(ctx, names.ObjectModels)
	if err != nil {
		return nil, fmt.Errorf("modelstore: open object store %s: %w", names.ObjectModels, err)
	}
	s := &Store{cfg: cfg, obj: obj, pub: cfg.Key.Public().(ed25519.PublicKey)}
	mine := modelpkg.FormatPublicKey(s.pub)
	fleet, err := obj.GetBytes(ctx, PublicKeyObject)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		if _, err := obj.PutBytes(ctx, PublicKeyObject, []byte(mine)); err != nil {
			return nil, fmt.Errorf("modelstore: publish public key: %w", err)
		}
		// Read back: a replica starting at the same moment may have won.
		fleet, err = obj.GetBytes(ctx, PublicKeyObject)
	}
	if err != nil {
		return nil, fmt.Errorf("modelstore: read %s: %w", PublicKeyObject, err)
	}
	if strings.TrimSpace(string(fleet)) != mine {
		return s, fmt.Errorf("%w: this replica's key is %s, the fleet's (object %s in %s) is %s: start every replica with the same key file (--signing-key FILE), or delete that object to make this key the fleet's",
			ErrKeyMismatch, mine, PublicKeyObject, names.ObjectModels, strings.TrimSpace(string(fleet)))
	}
	return s, nil
}

// PublicKey is the public half of the signing key.
func (s *Store) PublicKey() ed25519.PublicKey { return s.pub }

// KeyInfo describes the public key.
func (s *Store) KeyInfo() api.KeyInfo {
	id := modelpkg.KeyIDOf(s.pub)
	return api.KeyInfo{PublicKey: modelpkg.FormatPublicKey(s.pub), KeyID: hex.EncodeToString(id[:])}
}

// ObjectName is the package object of name@version (names.ModelObject).
func ObjectName(name string, version int) string { return names.ModelObject(name, version) }

func badRequest(format string, args ...any) error {
	return &api.BadRequestError{Err: fmt.Errorf(format, args...)}
}

// Push validates, signs and stores the uploaded file req.Upload as
// req.Name@req.Version. The upload is deleted whatever the outcome.
func (s *Store) Push(ctx context.Context, req api.ModelPushRequest) (api.ModelDetail, error) {
	var out api.ModelDetail
	if !strings.HasPrefix(req.Upload, api.UploadPrefix) || len(req.Upload) == len(api.UploadPrefix) {
		return out, badRequest("models.push: upload %q must name an object under %s in %s (the fleet CLI puts the file there)", req.Upload, api.UploadPrefix, names.ObjectModels)
	}
	defer func() {
		if err := s.obj.Delete(context.WithoutCancel(ctx), req.Upload); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
			s.cfg.Logger.Warn("delete model upload", "object", req.Upload, "err", err)
		}
		s.sweepUploads(ctx)
	}()
	if err := modelpkg.ValidName(req.Name); err != nil {
		return out, badRequest("models.push: %w", err)
	}
	if req.Version < 1 {
		return out, badRequest("models.push: version %d: give an integer ≥ 1 (--version)", req.Version)
	}
	roleText := req.Role
	if roleText == "" {
		roleText = "edge"
	}
	role, err := modelpkg.ParseRole(roleText)
	if err != nil {
		return out, badRequest("models.push: %w", err)
	}
	info, err := s.obj.GetInfo(ctx, req.Upload)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return out, badRequest("models.push: upload %s not found in %s (it is deleted after a push, or after %s)", req.Upload, names.ObjectModels, s.cfg.UploadMaxAge)
	}
	if err != nil {
		return out, api.WithCode(api.CodeUnavailable, fmt.Errorf("models.push: read upload %s: %w", req.Upload, err))
	}
	if info.Size == 0 {
		return out, api.WithCode(api.CodeRefused, fmt.Errorf("%w: the file is empty", ErrRefused))
	}
	if int64(info.Size) > s.cfg.MaxModelBytes {
		return out, api.WithCode(api.CodeRefused, fmt.Errorf("%w: the file has %d bytes, more than the %d this store accepts", ErrRefused, info.Size, s.cfg.MaxModelBytes))
	}
	if !req.Force {
		if _, err := s.obj.GetInfo(ctx, ObjectName(req.Name, req.Version)); err == nil {
			return out, api.WithCode(api.CodeConflict, fmt.Errorf("%w: %s@%d is stored already: push another --version, or --force to replace it", ErrExists, req.Name, req.Version))
		}
	}
	model, err := s.obj.GetBytes(ctx, req.Upload)
	if err != nil {
		return out, api.WithCode(api.CodeUnavailable, fmt.Errorf("models.push: read upload %s: %w", req.Upload, err))
	}
	rep, err := Check(model, role)
	if err != nil {
		return out, api.WithCode(api.CodeRefused, err)
	}
	manifest, err := modelpkg.NewManifest(modelpkg.Header{Name: req.Name, Version: req.Version, Role: role, Created: s.cfg.Now()}, req.Manifest, model)
	if err != nil {
		return out, badRequest("models.push: %w", err)
	}
	pkg, err := modelpkg.Sign(manifest, model, s.cfg.Key)
	if err != nil {
		return out, fmt.Errorf("models.push: sign: %w", err)
	}
	h, err := modelpkg.Verify(pkg, s.pub)
	if err != nil {
		return out, fmt.Errorf("models.push: the package just signed does not verify: %w", err)
	}
	blob := pkg.Encode()
	mi := api.ModelInfo{
		Name: h.Name, Version: h.Version, Role: h.Role, SHA256: h.SHA256, Size: h.Size,
		PackageSize: uint64(len(blob)), Created: h.Created, KeyID: hex.EncodeToString(pkg.KeyID[:]),
		Object: ObjectName(h.Name, h.Version), Inputs: rep.Inputs, Outputs: rep.Outputs, Operators: rep.Operators,
	}
	meta, err := json.Marshal(mi)
	if err != nil {
		return out, fmt.Errorf("models.push: %w", err)
	}
	if _, err := s.obj.Put(ctx, jetstream.ObjectMeta{
		Name:        mi.Object,
		Description: "Outpost model package " + mi.ID(),
		Metadata:    map[string]string{metaKey: string(meta)},
	}, strings.NewReader(string(blob))); err != nil {
		return out, api.WithCode(api.CodeUnavailable, fmt.Errorf("models.push: store %s: %w", mi.Object, err))
	}
	s.cfg.Logger.Info("model stored", "model", mi.ID(), "role", mi.Role, "sha256", mi.SHA256, "size", mi.Size, "force", req.Force)
	return api.ModelDetail{ModelInfo: mi, Manifest: pkg.Manifest, SignatureOK: true}, nil
}

// sweepUploads deletes uploads older than UploadMaxAge (a CLI that died
// between upload and push).
func (s *Store) sweepUploads(ctx context.Context) {
	infos, err := s.obj.List(context.WithoutCancel(ctx))
	if err != nil {
		return
	}
	cutoff := s.cfg.Now().Add(-s.cfg.UploadMaxAge)
	for _, in := range infos {
		if strings.HasPrefix(in.Name, api.UploadPrefix) && in.ModTime.Before(cutoff) {
			_ = s.obj.Delete(context.WithoutCancel(ctx), in.Name)
		}
	}
}

// List returns every stored model version, sorted by name and version.
func (s *Store) List(ctx context.Context) ([]api.ModelInfo, error) {
	infos, err := s.obj.List(ctx)
	if errors.Is(err, jetstream.ErrNoObjectsFound) {
		return []api.ModelInfo{}, nil
	}
	if err != nil {
		return nil, api.WithCode(api.CodeUnavailable, fmt.Errorf("models.list: %w", err))
	}
	out := []api.ModelInfo{}
	for _, in := range infos {
		if mi, ok := s.infoOf(in); ok {
			out = append(out, mi)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].Version < out[j].Version
	})
	return out, nil
}

func (s *Store) infoOf(in *jetstream.ObjectInfo) (api.ModelInfo, bool) {
	var mi api.ModelInfo
	if in == nil || in.Deleted || strings.HasPrefix(in.Name, "_") {
		return mi, false
	}
	raw, ok := in.Metadata[metaKey]
	if !ok || json.Unmarshal([]byte(raw), &mi) != nil {
		return mi, false
	}
	mi.PackageSize = in.Size
	mi.Object = in.Name
	return mi, true
}

// resolve finds the object of ref (Version 0: the latest version).
func (s *Store) resolve(ctx context.Context, ref api.ModelRef, endpoint string) (api.ModelInfo, error) {
	if err := modelpkg.ValidName(ref.Name); err != nil {
		return api.ModelInfo{}, badRequest("%s: %w", endpoint, err)
	}
	if ref.Version < 0 {
		return api.ModelInfo{}, badRequest("%s: version %d: give an integer ≥ 1, or none for the latest", endpoint, ref.Version)
	}
	if ref.Version > 0 {
		in, err := s.obj.GetInfo(ctx, ObjectName(ref.Name, ref.Version))
		if errors.Is(err, jetstream.ErrObjectNotFound) {
			return api.ModelInfo{}, api.WithCode(api.CodeNotFound, fmt.Errorf("%w: %s (see `fleet models list`)", ErrNotFound, ref))
		}
		if err != nil {
			return api.ModelInfo{}, api.WithCode(api.CodeUnavailable, fmt.Errorf("%s: %w", endpoint, err))
		}
		mi, ok := s.infoOf(in)
		if !ok {
			return mi, fmt.Errorf("%s: object %s has no model metadata", endpoint, in.Name)
		}
		return mi, nil
	}
	all, err := s.List(ctx)
	if err != nil {
		return api.ModelInfo{}, err
	}
	var best *api.ModelInfo
	for i := range all {
		if all[i].Name == ref.Name {
			best = &all[i]
		}
	}
	if best == nil {
		return api.ModelInfo{}, api.WithCode(api.CodeNotFound, fmt.Errorf("%w: no version of %s (see `fleet models list`)", ErrNotFound, ref.Name))
	}
	return *best, nil
}

// Package reads and decodes the package of ref. It does not verify it.
func (s *Store) Package(ctx context.Context, ref api.ModelRef) (*modelpkg.Package, api.ModelInfo, error) {
	mi, blob, err := s.Blob(ctx, ref)
	if err != nil {
		return nil, mi, err
	}
	pkg, err := modelpkg.Decode(blob)
	if err != nil {
		return nil, mi, fmt.Errorf("stored package %s: %w", mi.Object, err)
	}
	return pkg, mi, nil
}

// Show returns ref's manifest and verifies its package with the store's
// key.
func (s *Store) Show(ctx context.Context, ref api.ModelRef) (api.ModelDetail, error) {
	pkg, mi, err := s.Package(ctx, ref)
	if err != nil {
		return api.ModelDetail{}, err
	}
	d := api.ModelDetail{ModelInfo: mi, Manifest: json.RawMessage(pkg.Manifest)}
	if !json.Valid(pkg.Manifest) {
		d.Manifest = nil
	}
	if _, err := modelpkg.Verify(pkg, s.pub); err != nil {
		d.VerifyError = err.Error()
	} else {
		d.SignatureOK = true
	}
	return d, nil
}

// Pull resolves ref to its package object, which the caller reads from the
// object store (packages may exceed a NATS message).
func (s *Store) Pull(ctx context.Context, ref api.ModelRef) (api.ModelInfo, error) {
	return s.resolve(ctx, ref, "models.pull")
}

// Delete removes ref's package; ref must name a version.
func (s *Store) Delete(ctx context.Context, ref api.ModelRef) (api.ModelInfo, error) {
	if ref.Version == 0 {
		return api.ModelInfo{}, badRequest("models.delete: name the version to delete, e.g. %s@2", ref.Name)
	}
	mi, err := s.resolve(ctx, ref, "models.delete")
	if err != nil {
		return mi, err
	}
	if err := s.obj.Delete(ctx, mi.Object); err != nil {
		if errors.Is(err, jetstream.ErrObjectNotFound) {
			return mi, api.WithCode(api.CodeNotFound, fmt.Errorf("%w: %s", ErrNotFound, ref))
		}
		return mi, api.WithCode(api.CodeUnavailable, fmt.Errorf("models.delete: %w", err))
	}
	s.cfg.Logger.Info("model deleted", "model", mi.ID())
	return mi, nil
}

// Blob reads ref's package blob as stored (not verified).
func (s *Store) Blob(ctx context.Context, ref api.ModelRef) (api.ModelInfo, []byte, error) {
	mi, err := s.resolve(ctx, ref, "models.pull")
	if err != nil {
		return mi, nil, err
	}
	blob, err := s.obj.GetBytes(ctx, mi.Object)
	if err != nil {
		return mi, nil, api.WithCode(api.CodeUnavailable, fmt.Errorf("read %s: %w", mi.Object, err))
	}
	return mi, blob, nil
}
