package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Model store and key endpoints, relative to names.APIPrefix.
//
//	models.push   request: ModelPushRequest    reply: ModelDetail
//	models.list   request: empty               reply: []ModelInfo
//	models.show   request: ModelRef            reply: ModelDetail
//	models.pull   request: ModelRef            reply: ModelInfo (Object names the package in outpost_models)
//	models.delete request: ModelRef            reply: ModelInfo (what was deleted)
//	keys.public   request: empty               reply: KeyInfo
const (
	EndpointModelsPush   = "models.push"
	EndpointModelsList   = "models.list"
	EndpointModelsShow   = "models.show"
	EndpointModelsPull   = "models.pull"
	EndpointModelsDelete = "models.delete"
	EndpointKeysPublic   = "keys.public"
)

// More error codes.
const (
	// CodeNotFound: the named model (version) does not exist.
	CodeNotFound = "404"
	// CodeConflict: the model version exists already (push with force to
	// replace it).
	CodeConflict = "409"
	// CodeRefused: the model file was refused (does not load, does not
	// run, or does not fit its role); the message says why.
	CodeRefused = "422"
)

// CodedError carries an API error code with the error a handler returns;
// the service replies with Code and Err's message.
type CodedError struct {
	Code string
	Err  error
}

func (e *CodedError) Error() string { return e.Err.Error() }
func (e *CodedError) Unwrap() error { return e.Err }

// WithCode marks err with an API error code.
func WithCode(code string, err error) error { return &CodedError{Code: code, Err: err} }

// ErrorCode returns the API code of err: the code of a CodedError or
// BadRequestError in its chain, else CodeInternal.
func ErrorCode(err error) string {
	var ce *CodedError
	if errors.As(err, &ce) {
		return ce.Code
	}
	var bad *BadRequestError
	if errors.As(err, &bad) {
		return CodeBadRequest
	}
	return CodeInternal
}

// ModelPushRequest asks the service to validate, sign and store a model
// file that the caller first put into the outpost_models object store
// under Upload (a name starting with UploadPrefix; the service deletes it).
// NATS messages are limited to 1 MB by default, so the file travels through
// the object store, which chunks it.
type ModelPushRequest struct {
	Name    string `json:"name"`
	Version int    `json:"version"`
	// Role is "edge" / "edge-int8" or "cloud" / "cloud-float"; empty means
	// edge.
	Role string `json:"role,omitempty"`
	// Manifest is an optional JSON object carried in the package's
	// manifest (window, features, normalisation, thresholds ...).
	Manifest json.RawMessage `json:"manifest,omitempty"`
	// Upload is the object holding the .tflite bytes.
	Upload string `json:"upload"`
	// Force replaces an existing version.
	Force bool `json:"force,omitempty"`
}

// UploadPrefix starts the names of uploaded files waiting to be pushed.
const UploadPrefix = "_uploads/"

// ModelRef names a model version; Version 0 means the latest.
type ModelRef struct {
	Name    string `json:"name"`
	Version int    `json:"version,omitempty"`
}

// String is "name@version", or "name" for the latest.
func (r ModelRef) String() string {
	if r.Version == 0 {
		return r.Name
	}
	return fmt.Sprintf("%s@%d", r.Name, r.Version)
}

// ParseModelRef parses "name@version" or "name" (the latest version).
func ParseModelRef(s string) (ModelRef, error) {
	name, ver, has := strings.Cut(strings.TrimSpace(s), "@")
	r := ModelRef{Name: name}
	if name == "" {
		return r, fmt.Errorf("model %q: write name@version, e.g. vib@2", s)
	}
	if has && ver != "latest" {
		v, err := strconv.Atoi(ver)
		if err != nil || v < 1 {
			return r, fmt.Errorf("model %q: the version must be an integer ≥ 1 (or latest), e.g. %s@2", s, name)
		}
		r.Version = v
	}
	return r, nil
}

// ModelInfo describes a stored model package.
type ModelInfo struct {
	Name    string `json:"name"`
	Version int    `json:"version"`
	Role    string `json:"role"`
	// SHA256 and Size are the .tflite file's.
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
	// PackageSize is the size of the signed package blob.
	PackageSize uint64 `json:"package_size"`
	// Created is when the package was signed.
	Created time.Time `json:"created"`
	// KeyID is the hex id of the key that signed it.
	KeyID string `json:"key_id"`
	// Object is the package's name in the outpost_models object store.
	Object string `json:"object"`
	// Inputs and Outputs are the model's tensors, e.g. "int8[1 1]".
	Inputs  []string `json:"inputs,omitempty"`
	Outputs []string `json:"outputs,omitempty"`
	// Operators lists the model's operators with counts, e.g.
	// "FULLY_CONNECTED×3".
	Operators []string `json:"operators,omitempty"`
}

// ID is "name@version".
func (m ModelInfo) ID() string { return fmt.Sprintf("%s@%d", m.Name, m.Version) }

// ModelDetail is a model package with its manifest and the result of
// verifying it with the service's key.
type ModelDetail struct {
	ModelInfo
	// Manifest is the package's manifest JSON, as signed.
	Manifest json.RawMessage `json:"manifest"`
	// SignatureOK says the package verified (signature and sha256) with
	// the service's public key; VerifyError says why not.
	SignatureOK bool   `json:"signature_ok"`
	VerifyError string `json:"verify_error,omitempty"`
}

// KeyInfo is the reply of keys.public.
type KeyInfo struct {
	// PublicKey is "ed25519:<base64>", the form gateway profiles take.
	PublicKey string `json:"public_key"`
	// KeyID is the hex id packages carry.
	KeyID string `json:"key_id"`
}
