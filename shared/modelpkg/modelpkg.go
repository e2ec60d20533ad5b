// Package modelpkg is the signed model package that outpost-cloud makes and
// outpost-edge verifies: the .tflite bytes, a JSON manifest and an ed25519
// signature by the cloud's model-signing key. It uses the standard library
// only (crypto/ed25519, crypto/sha256, encoding/json), so the edge can link
// it without pulling in NATS or anything else.
//
// # What is signed
//
// The signature covers the manifest bytes exactly as stored (no JSON
// re-encoding): the signed message is
//
//	"outpost-modelpkg-v1\x00" || manifest bytes
//
// The manifest carries the hex sha256 and the size of the model bytes, so
// the signature binds the model through its hash. Verify checks, in order:
// the key id (ErrWrongKey, which also matches ErrBadSignature), the
// signature (ErrBadSignature), the manifest's required fields
// (ErrBadManifest), then the model's size and sha256 (ErrHashMismatch).
//
// # Manifest
//
// A JSON object. Required fields (see Header): "name", "version" (an integer
// ≥ 1), "role" (RoleEdge "edge-int8" or RoleCloud "cloud-float", the roles of
// models/manifest), "sha256" (hex), "size" (bytes) and "created" (RFC 3339).
// Every other field, e.g. the window, features, normalisation and
// thresholds of a models/manifest.Manifest, is carried through untouched.
//
// # Container (Encode, Decode)
//
// One blob, all integers big-endian:
//
//	offset  size  field
//	0       8     magic "OPMPKG\x00\x01" (format version 1)
//	8       8     key id: the first 8 bytes of sha256(public key)
//	16      64    ed25519 signature
//	80      4     manifest length M (1 .. MaxManifestBytes)
//	84      4     model length N (1 .. MaxModelBytes)
//	88      M     manifest JSON
//	88+M    N     model (.tflite) bytes
//
// The blob is exactly 88+M+N bytes; Decode rejects anything else with
// ErrMalformed and never panics. The cloud stores one such blob per model
// version in the object store outpost_models under "<name>/<version>".
package modelpkg

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Roles, spelled as in models/manifest.
const (
	// RoleEdge is an integer-quantised model for the gateway.
	RoleEdge = "edge-int8"
	// RoleCloud is a float model for the cloud's second stage.
	RoleCloud = "cloud-float"
)

// Limits.
const (
	// MaxManifestBytes bounds the manifest.
	MaxManifestBytes = 1 << 20
	// MaxModelBytes bounds the model file.
	MaxModelBytes = 64 << 20
	// HeaderSize is the size of the container's fixed part.
	HeaderSize = 88
	// KeyIDSize is the size of a key id.
	KeyIDSize = 8
)

// Magic starts every encoded package: "OPMPKG", a zero byte and the format
// version (1).
var Magic = [8]byte{'O', 'P', 'M', 'P', 'K', 'G', 0, 1}

// signContext prefixes the signed message so that a model-signing
// signature can never be mistaken for a signature over anything else.
const signContext = "outpost-modelpkg-v1\x00"

// Errors. Every error Verify and Decode return wraps one of them.
var (
	// ErrMalformed: the blob is not a well-formed package.
	ErrMalformed = errors.New("modelpkg: malformed package")
	// ErrBadSignature: the signature does not verify with the key.
	ErrBadSignature = errors.New("modelpkg: bad signature")
	// ErrWrongKey: the package was signed by a key other than the one
	// given. Errors wrapping it also wrap ErrBadSignature.
	ErrWrongKey = errors.New("modelpkg: signed by another key")
	// ErrBadManifest: the manifest is not JSON or lacks a required field.
	ErrBadManifest = errors.New("modelpkg: bad manifest")
	// ErrHashMismatch: the model bytes are not the ones the manifest
	// describes (size or sha256 differ).
	ErrHashMismatch = errors.New("modelpkg: model hash mismatch")
	// ErrBadKey: a key text or key is not a valid ed25519 key.
	ErrBadKey = errors.New("modelpkg: bad key")
)

// Header is the manifest's required part.
type Header struct {
	// Name is the model's name: 1 to 64 letters, digits, '-', '_' or
	// '.', starting with a letter or digit.
	Name string `json:"name"`
	// Version is the model's version, ≥ 1.
	Version int `json:"version"`
	// Role is RoleEdge or RoleCloud.
	Role string `json:"role"`
	// SHA256 is the hex sha256 of the model bytes.
	SHA256 string `json:"sha256"`
	// Size is the model's size in bytes.
	Size int64 `json:"size"`
	// Created is when the package was made.
	Created time.Time `json:"created"`
}

// ID is "name@version".
func (h Header) ID() string { return fmt.Sprintf("%s@%d", h.Name, h.Version) }

// ValidName reports whether name can name a model: it becomes part of an
// object name, so it is limited to 1 to 64 letters, digits, '-', '_' and
// '.', starting with a letter or a digit.
func ValidName(name string) error {
	if name == "" {
		return errors.New("model name is empty")
	}
	if len(name) > 64 {
		return fmt.Errorf("model name %q is longer than 64 characters", name)
	}
	for i, r := range name {
		alnum := (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9')
		if i == 0 && !alnum {
			return fmt.Errorf("model name %q must start with a letter or digit", name)
		}
		if !alnum && r != '-' && r != '_' && r != '.' {
			return fmt.Errorf("model name %q: character %q at %d is not allowed (use letters, digits, '-', '_' and '.')", name, r, i)
		}
	}
	return nil
}

// ParseRole accepts "edge", "edge-int8", "cloud" or "cloud-float" and
// returns RoleEdge or RoleCloud.
func ParseRole(s string) (string, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "edge", RoleEdge:
		return RoleEdge, nil
	case "cloud", RoleCloud:
		return RoleCloud, nil
	}
	return "", fmt.Errorf("role %q: use edge (%s) or cloud (%s)", s, RoleEdge, RoleCloud)
}

func (h Header) validate() error {
	if err := ValidName(h.Name); err != nil {
		return err
	}
	if h.Version < 1 {
		return fmt.Errorf("version %d: must be an integer ≥ 1", h.Version)
	}
	if h.Role != RoleEdge && h.Role != RoleCloud {
		return fmt.Errorf("role %q: must be %q or %q", h.Role, RoleEdge, RoleCloud)
	}
	if b, err := hex.DecodeString(h.SHA256); err != nil || len(b) != sha256.Size {
		return fmt.Errorf("sha256 %q: must be 64 hex digits", h.SHA256)
	}
	if h.Size < 1 || h.Size > MaxModelBytes {
		return fmt.Errorf("size %d: must be 1 to %d bytes", h.Size, MaxModelBytes)
	}
	if h.Created.IsZero() {
		return errors.New("created is missing")
	}
	return nil
}

// ParseManifest decodes the required fields of a manifest and checks them.
// Errors wrap ErrBadManifest.
func ParseManifest(manifest []byte) (Header, error) {
	var h Header
	if err := json.Unmarshal(manifest, &h); err != nil {
		return h, fmt.Errorf("%w: %w", ErrBadManifest, err)
	}
	if err := h.validate(); err != nil {
		return h, fmt.Errorf("%w: %w", ErrBadManifest, err)
	}
	return h, nil
}

// SumHex returns the hex sha256 of b.
func SumHex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// NewManifest makes the manifest of model: the fields of extra (a JSON
// object, or empty), with name, version, role, sha256, size and created set
// from h and model. If extra already has one of name, version, role or
// sha256 with another value, NewManifest fails rather than overwrite it
// (a manifest that names another file or model is a mistake). h.SHA256 and
// h.Size are computed; h.Created defaults to now. Keys are written sorted,
// so the result is deterministic.
func NewManifest(h Header, extra, model []byte) ([]byte, error) {
	h.SHA256 = SumHex(model)
	h.Size = int64(len(model))
	if h.Created.IsZero() {
		h.Created = time.Now()
	}
	h.Created = h.Created.UTC().Truncate(time.Millisecond)
	fields := map[string]json.RawMessage{}
	if len(bytes.TrimSpace(extra)) > 0 {
		if err := json.Unmarshal(extra, &fields); err != nil {
			return nil, fmt.Errorf("%w: the manifest must be a JSON object: %w", ErrBadManifest, err)
		}
		if fields == nil {
			fields = map[string]json.RawMessage{}
		}
	}
	set := func(key string, v any, conflictCheck bool) error {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		if old, ok := fields[key]; ok && conflictCheck {
			var a, c any
			if json.Unmarshal(old, &a) != nil || json.Unmarshal(b, &c) != nil || fmt.Sprint(a) != fmt.Sprint(c) {
				return fmt.Errorf("%w: the manifest says %s %s, but the package is %s %s", ErrBadManifest, key, old, key, b)
			}
		}
		fields[key] = b
		return nil
	}
	for _, f := range []struct {
		key   string
		v     any
		check bool
	}{
		{"name", h.Name, true}, {"version", h.Version, true}, {"role", h.Role, true},
		{"sha256", h.SHA256, true}, {"size", h.Size, false}, {"created", h.Created, false},
	} {
		if err := set(f.key, f.v, f.check); err != nil {
			return nil, err
		}
	}
	out, err := json.MarshalIndent(fields, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadManifest, err)
	}
	if _, err := ParseManifest(out); err != nil {
		return nil, err
	}
	return out, nil
}

// Package is a decoded model package.
type Package struct {
	// KeyID identifies the signing key (KeyIDOf).
	KeyID [KeyIDSize]byte
	// Signature is the ed25519 signature over the manifest.
	Signature []byte
	// Manifest is the manifest JSON, as signed.
	Manifest []byte
	// Model is the .tflite file.
	Model []byte
}

// KeyIDOf returns the first 8 bytes of the sha256 of pub.
func KeyIDOf(pub ed25519.PublicKey) [KeyIDSize]byte {
	s := sha256.Sum256(pub)
	var id [KeyIDSize]byte
	copy(id[:], s[:KeyIDSize])
	return id
}

func signedMessage(manifest []byte) []byte {
	msg := make([]byte, 0, len(signContext)+len(manifest))
	return append(append(msg, signContext...), manifest...)
}

// Sign makes a package of model and its manifest, signed with priv. It
// checks first that the manifest is valid and describes model.
func Sign(manifest, model []byte, priv ed25519.PrivateKey) (*Package, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("%w: private key has %d bytes, want %d", ErrBadKey, len(priv), ed25519.PrivateKeySize)
	}
	if len(manifest) > MaxManifestBytes {
		return nil, fmt.Errorf("%w: manifest has %d bytes, more than %d", ErrBadManifest, len(manifest), MaxManifestBytes)
	}
	h, err := ParseManifest(manifest)
	if err != nil {
		return nil, err
	}
	if err := checkModel(h, model); err != nil {
		return nil, err
	}
	pub := priv.Public().(ed25519.PublicKey)
	return &Package{
		KeyID:     KeyIDOf(pub),
		Signature: ed25519.Sign(priv, signedMessage(manifest)),
		Manifest:  append([]byte(nil), manifest...),
		Model:     append([]byte(nil), model...),
	}, nil
}

func checkModel(h Header, model []byte) error {
	if int64(len(model)) != h.Size {
		return fmt.Errorf("%w: model %s has %d bytes, the manifest says %d", ErrHashMismatch, h.ID(), len(model), h.Size)
	}
	if got := SumHex(model); got != strings.ToLower(h.SHA256) {
		return fmt.Errorf("%w: model %s has sha256 %s, the manifest says %s", ErrHashMismatch, h.ID(), got, h.SHA256)
	}
	return nil
}

// Verify checks p against the trusted public key pub: the key id, the
// signature over the manifest, the manifest's required fields, then the
// model's size and sha256. It returns the manifest's header when all hold.
// The error says which check failed and wraps ErrWrongKey (and
// ErrBadSignature), ErrBadSignature, ErrBadManifest or ErrHashMismatch.
func Verify(p *Package, pub ed25519.PublicKey) (Header, error) {
	if p == nil {
		return Header{}, fmt.Errorf("%w: no package", ErrMalformed)
	}
	if len(pub) != ed25519.PublicKeySize {
		return Header{}, fmt.Errorf("%w: public key has %d bytes, want %d", ErrBadKey, len(pub), ed25519.PublicKeySize)
	}
	if want := KeyIDOf(pub); p.KeyID != want {
		return Header{}, fmt.Errorf("%w: %w: the package was signed by key %x, the trusted key is %x (%s)",
			ErrBadSignature, ErrWrongKey, p.KeyID, want, FormatPublicKey(pub))
	}
	if len(p.Signature) != ed25519.SignatureSize || !ed25519.Verify(pub, signedMessage(p.Manifest), p.Signature) {
		return Header{}, fmt.Errorf("%w: the manifest's signature does not verify with key %x (manifest or signature altered)", ErrBadSignature, p.KeyID)
	}
	h, err := ParseManifest(p.Manifest)
	if err != nil {
		return h, err
	}
	if err := checkModel(h, p.Model); err != nil {
		return h, err
	}
	return h, nil
}

// Encode writes p as one blob (see the package doc).
func (p *Package) Encode() []byte {
	out := make([]byte, HeaderSize, HeaderSize+len(p.Manifest)+len(p.Model))
	copy(out[0:8], Magic[:])
	copy(out[8:16], p.KeyID[:])
	copy(out[16:80], p.Signature)
	binary.BigEndian.PutUint32(out[80:84], uint32(len(p.Manifest)))
	binary.BigEndian.PutUint32(out[84:88], uint32(len(p.Model)))
	out = append(out, p.Manifest...)
	return append(out, p.Model...)
}

// Decode parses a blob made by Encode. It checks the magic, the lengths
// against the limits and the blob's size, and copies nothing: the returned
// package's slices alias b. It does not verify; call Verify. Errors wrap
// ErrMalformed.
func Decode(b []byte) (*Package, error) {
	if len(b) < HeaderSize {
		return nil, fmt.Errorf("%w: %d bytes, shorter than the %d-byte header", ErrMalformed, len(b), HeaderSize)
	}
	if !bytes.Equal(b[0:8], Magic[:]) {
		if bytes.Equal(b[0:6], Magic[:6]) {
			return nil, fmt.Errorf("%w: format version %d, this build reads version %d", ErrMalformed, b[7], Magic[7])
		}
		return nil, fmt.Errorf("%w: no package magic (is this a bare .tflite file?)", ErrMalformed)
	}
	m := uint64(binary.BigEndian.Uint32(b[80:84]))
	n := uint64(binary.BigEndian.Uint32(b[84:88]))
	switch {
	case m == 0 || m > MaxManifestBytes:
		return nil, fmt.Errorf("%w: manifest length %d out of range 1..%d", ErrMalformed, m, MaxManifestBytes)
	case n == 0 || n > MaxModelBytes:
		return nil, fmt.Errorf("%w: model length %d out of range 1..%d", ErrMalformed, n, MaxModelBytes)
	case uint64(len(b)) != HeaderSize+m+n:
		return nil, fmt.Errorf("%w: %d bytes, the header says %d (truncated or trailing data)", ErrMalformed, len(b), HeaderSize+m+n)
	}
	p := &Package{Signature: b[16:80:80], Manifest: b[HeaderSize : HeaderSize+m : HeaderSize+m], Model: b[HeaderSize+m:]}
	copy(p.KeyID[:], b[8:16])
	return p, nil
}

// PublicKeyPrefix starts the text form of a public key.
const PublicKeyPrefix = "ed25519:"

// FormatPublicKey returns "ed25519:<standard base64 of the 32 key bytes>",
// the form gateway profiles and `fleet keys public` use.
func FormatPublicKey(pub ed25519.PublicKey) string {
	return PublicKeyPrefix + base64.StdEncoding.EncodeToString(pub)
}

// ParsePublicKey parses the text form FormatPublicKey writes (surrounding
// space is ignored). Errors wrap ErrBadKey.
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	s = strings.TrimSpace(s)
	rest, ok := strings.CutPrefix(s, PublicKeyPrefix)
	if !ok {
		return nil, fmt.Errorf("%w: %q does not start with %q (get the key with `fleet keys public`)", ErrBadKey, s, PublicKeyPrefix)
	}
	b, err := base64.StdEncoding.DecodeString(rest)
	if err != nil {
		return nil, fmt.Errorf("%w: %q: %w", ErrBadKey, s, err)
	}
	if len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: %q has %d key bytes, want %d", ErrBadKey, s, len(b), ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(b), nil
}
