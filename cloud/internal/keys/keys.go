// Package keys holds outpost-cloud's model-signing key: an ed25519 key pair
// kept as a PEM (PKCS #8) file, created at the first start and reused after.
//
// With one outpost-cloud the file lives in the data directory
// (<data>/keys/model-signing.key). Replicas on an external NATS must all sign
// with the same key: give each the same file (a mounted secret) with
// --signing-key FILE. A file is created only when none exists; creation is
// atomic (written to a temporary file, then hard-linked into place), so two
// processes starting at once on a shared directory end up with the same key.
package keys

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// DefaultFile is the key file's path relative to the data directory.
const DefaultFile = "keys/model-signing.key"

const pemType = "PRIVATE KEY"

// LoadOrCreate reads the ed25519 private key at path, or creates one (mode
// 0600, its directory 0700) when there is none. created says whether it
// did.
func LoadOrCreate(path string) (key ed25519.PrivateKey, created bool, err error) {
	key, err = Load(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return key, false, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, false, fmt.Errorf("keys: create directory for %s: %w", path, err)
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, false, fmt.Errorf("keys: generate: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, false, fmt.Errorf("keys: encode: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".model-signing-*.tmp")
	if err != nil {
		return nil, false, fmt.Errorf("keys: create %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return nil, false, fmt.Errorf("keys: chmod %s: %w", tmp.Name(), err)
	}
	if err := pem.Encode(tmp, &pem.Block{Type: pemType, Bytes: der}); err != nil {
		tmp.Close()
		return nil, false, fmt.Errorf("keys: write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, false, fmt.Errorf("keys: sync %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return nil, false, fmt.Errorf("keys: close %s: %w", tmp.Name(), err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			// Another process created it first: use theirs.
			key, err = Load(path)
			return key, false, err
		}
		return nil, false, fmt.Errorf("keys: install %s: %w", path, err)
	}
	return priv, true, nil
}

// Load reads an ed25519 private key from a PEM file holding a PKCS #8
// "PRIVATE KEY" block. A missing file gives an error wrapping
// fs.ErrNotExist.
func Load(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("keys: read model-signing key: %w", err)
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != pemType {
		return nil, fmt.Errorf("keys: %s is not a PEM %q file", path, pemType)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("keys: %s: %w", path, err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("keys: %s holds a %T, not an ed25519 key", path, k)
	}
	return priv, nil
}

// LoosePermissions reports whether the file at path can be read by group or
// others (the service warns then).
func LoosePermissions(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().Perm()&0o077 != 0
}
