package modelpkg

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

var testSeed = bytes.Repeat([]byte{7}, ed25519.SeedSize)

func testKey() ed25519.PrivateKey { return ed25519.NewKeyFromSeed(testSeed) }

func testPackage(t testing.TB, extra string) *Package {
	t.Helper()
	model := []byte("TFL3 pretend model bytes")
	man, err := NewManifest(Header{Name: "vib", Version: 2, Role: RoleEdge, Created: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}, []byte(extra), model)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Sign(man, model, testKey())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSignEncodeDecodeVerify(t *testing.T) {
	p := testPackage(t, `{"window":32,"thresholds":{"low":0.4,"high":0.9},"name":"vib"}`)
	blob := p.Encode()
	q, err := Decode(blob)
	if err != nil {
		t.Fatal(err)
	}
	h, err := Verify(q, testKey().Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	if h.ID() != "vib@2" || h.Role != RoleEdge || h.Size != int64(len(q.Model)) || h.SHA256 != SumHex(q.Model) {
		t.Fatalf("header %+v", h)
	}
	var m map[string]any
	if err := json.Unmarshal(q.Manifest, &m); err != nil {
		t.Fatal(err)
	}
	if m["window"] != float64(32) || m["thresholds"].(map[string]any)["high"] != 0.9 {
		t.Fatalf("extra fields not carried through: %s", q.Manifest)
	}
	if !bytes.Equal(q.Encode(), blob) {
		t.Fatal("re-encoding differs")
	}
}

func TestNewManifestConflicts(t *testing.T) {
	model := []byte("x")
	for _, extra := range []string{`{"name":"other"}`, `{"version":3}`, `{"role":"cloud-float"}`, `{"sha256":"00"}`, `[1,2]`, `{`} {
		_, err := NewManifest(Header{Name: "vib", Version: 2, Role: RoleEdge}, []byte(extra), model)
		if !errors.Is(err, ErrBadManifest) {
			t.Errorf("extra %s: err %v, want ErrBadManifest", extra, err)
		}
	}
	if _, err := NewManifest(Header{Name: "vib", Version: 2, Role: RoleEdge}, []byte(`{"version":2,"name":"vib","role":"edge-int8"}`), model); err != nil {
		t.Errorf("agreeing fields refused: %v", err)
	}
	for _, h := range []Header{{Name: "", Version: 1, Role: RoleEdge}, {Name: "a/b", Version: 1, Role: RoleEdge}, {Name: "a", Version: 0, Role: RoleEdge}, {Name: "a", Version: 1, Role: "edge"}} {
		if _, err := NewManifest(h, nil, model); !errors.Is(err, ErrBadManifest) {
			t.Errorf("header %+v: err %v, want ErrBadManifest", h, err)
		}
	}
}

func TestVerifyTampering(t *testing.T) {
	pub := testKey().Public().(ed25519.PublicKey)
	otherPub := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, 32)).Public().(ed25519.PublicKey)
	cases := []struct {
		name   string
		modify func(blob []byte, p *Package) []byte
		key    ed25519.PublicKey
		want   error
	}{
		{"model byte flipped", func(b []byte, p *Package) []byte { b[len(b)-3] ^= 1; return b }, pub, ErrHashMismatch},
		{"manifest byte flipped", func(b []byte, p *Package) []byte { b[HeaderSize+10] ^= 1; return b }, pub, ErrBadSignature},
		{"signature byte flipped", func(b []byte, p *Package) []byte { b[20] ^= 0x80; return b }, pub, ErrBadSignature},
		{"model swapped", func(b []byte, p *Package) []byte {
			q := *p
			q.Model = []byte("TFL3 pretend model bytez")
			return q.Encode()
		}, pub, ErrHashMismatch},
		{"wrong key", func(b []byte, p *Package) []byte { return b }, otherPub, ErrWrongKey},
		{"key id forged", func(b []byte, p *Package) []byte { q := *p; q.KeyID = KeyIDOf(otherPub); return q.Encode() }, otherPub, ErrBadSignature},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := testPackage(t, "")
			blob := c.modify(p.Encode(), p)
			q, err := Decode(blob)
			if err != nil {
				t.Fatal(err)
			}
			_, err = Verify(q, c.key)
			if !errors.Is(err, c.want) {
				t.Fatalf("err %v, want %v", err, c.want)
			}
		})
	}
	// A wrong key is also a bad signature for callers that check only that.
	p := testPackage(t, "")
	if _, err := Verify(p, otherPub); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("wrong key: %v does not match ErrBadSignature", err)
	}
}

func TestDecodeMalformed(t *testing.T) {
	blob := testPackage(t, "").Encode()
	for name, b := range map[string][]byte{
		"empty":     nil,
		"short":     blob[:40],
		"truncated": blob[:len(blob)-1],
		"trailing":  append(append([]byte(nil), blob...), 0),
		"tflite":    append([]byte("\x1c\x00\x00\x00TFL3"), make([]byte, 200)...),
		"version 2": append([]byte("OPMPKG\x00\x02"), blob[8:]...),
	} {
		if _, err := Decode(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err %v, want ErrMalformed", name, err)
		}
	}
}

func TestPublicKeyText(t *testing.T) {
	pub := testKey().Public().(ed25519.PublicKey)
	s := FormatPublicKey(pub)
	if !strings.HasPrefix(s, "ed25519:") {
		t.Fatal(s)
	}
	got, err := ParsePublicKey(" " + s + "\n")
	if err != nil || !got.Equal(pub) {
		t.Fatalf("parse %q: %v", s, err)
	}
	for _, bad := range []string{"", "ed25519:", "rsa:AAAA", "ed25519:!!!", "ed25519:AAAA"} {
		if _, err := ParsePublicKey(bad); !errors.Is(err, ErrBadKey) {
			t.Errorf("%q: err %v, want ErrBadKey", bad, err)
		}
	}
}

func TestParseRole(t *testing.T) {
	for in, want := range map[string]string{"edge": RoleEdge, "EDGE-INT8": RoleEdge, "cloud": RoleCloud, "cloud-float": RoleCloud} {
		if got, err := ParseRole(in); err != nil || got != want {
			t.Errorf("%q: %q %v", in, got, err)
		}
	}
	if _, err := ParseRole("gpu"); err == nil {
		t.Error("gpu accepted")
	}
}

// FuzzDecodeVerify feeds arbitrary blobs to Decode and Verify: they must
// never panic, and anything that verifies must re-encode to the same bytes.
func FuzzDecodeVerify(f *testing.F) {
	good := testPackage(f, `{"window":8}`).Encode()
	f.Add(good)
	f.Add(good[:HeaderSize])
	f.Add([]byte("OPMPKG\x00\x01"))
	f.Add(append(append([]byte(nil), good[:HeaderSize]...), bytes.Repeat([]byte{0xff}, 64)...))
	pub := testKey().Public().(ed25519.PublicKey)
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Decode(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Decode error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if !bytes.Equal(p.Encode(), b) {
			t.Fatal("decoded package re-encodes differently")
		}
		h, err := Verify(p, pub)
		if err != nil {
			return
		}
		if h.SHA256 != SumHex(p.Model) {
			t.Fatal("verified package with a wrong hash")
		}
	})
}
