package api

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"
)

// ModelBlobs reads a stored package blob, for the HTTP download.
type ModelBlobs interface {
	Blob(ctx context.Context, ref ModelRef) (ModelInfo, []byte, error)
}

// ModelsHTTP mirrors the read side of the model endpoints over HTTP for
// the dashboard and scripts:
//
//	GET /api/v1/models                               []ModelInfo
//	GET /api/v1/models/{name}                        ModelDetail of the latest version
//	GET /api/v1/models/{name}/{version}              ModelDetail
//	GET /api/v1/models/{name}/{version}/package      the signed package (application/octet-stream)
//	GET /api/v1/keys/public                          KeyInfo
//
// Errors are JSON {"code":"404","message":"..."} with that HTTP status.
// Pushing and deleting are NATS-only (models.push, models.delete), where
// NATS permissions decide who may; the HTTP side has no authentication.
func ModelsHTTP(store ModelStore, blobs ModelBlobs, logger *slog.Logger) http.Handler {
	if logger == nil {
		logger = slog.Default()
	}
	h := &modelsHTTP{store: store, blobs: blobs, log: logger}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/models", h.list)
	mux.HandleFunc("GET /api/v1/models/{name}", h.show)
	mux.HandleFunc("GET /api/v1/models/{name}/{version}", h.show)
	mux.HandleFunc("GET /api/v1/models/{name}/{version}/package", h.pkg)
	mux.HandleFunc("GET /api/v1/keys/public", func(w http.ResponseWriter, r *http.Request) { h.json(w, store.KeyInfo()) })
	return mux
}

type modelsHTTP struct {
	store ModelStore
	blobs ModelBlobs
	log   *slog.Logger
}

func (h *modelsHTTP) ctx(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), 30*time.Second)
}

func (h *modelsHTTP) list(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := h.ctx(r)
	defer cancel()
	ms, err := h.store.List(ctx)
	if err != nil {
		h.fail(w, err)
		return
	}
	if ms == nil {
		ms = []ModelInfo{}
	}
	h.json(w, ms)
}

func (h *modelsHTTP) ref(w http.ResponseWriter, r *http.Request) (ModelRef, bool) {
	ref := ModelRef{Name: r.PathValue("name")}
	if v := r.PathValue("version"); v != "" && v != "latest" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			h.fail(w, &BadRequestError{errors.New("version " + strconv.Quote(v) + ": give an integer ≥ 1 or latest")})
			return ref, false
		}
		ref.Version = n
	}
	return ref, true
}

func (h *modelsHTTP) show(w http.ResponseWriter, r *http.Request) {
	ref, ok := h.ref(w, r)
	if !ok {
		return
	}
	ctx, cancel := h.ctx(r)
	defer cancel()
	d, err := h.store.Show(ctx, ref)
	if err != nil {
		h.fail(w, err)
		return
	}
	h.json(w, d)
}

func (h *modelsHTTP) pkg(w http.ResponseWriter, r *http.Request) {
	ref, ok := h.ref(w, r)
	if !ok {
		return
	}
	ctx, cancel := h.ctx(r)
	defer cancel()
	mi, blob, err := h.blobs.Blob(ctx, ref)
	if err != nil {
		h.fail(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", `attachment; filename="`+mi.ID()+`.opkg"`)
	w.Header().Set("Content-Length", strconv.Itoa(len(blob)))
	if _, err := w.Write(blob); err != nil {
		h.log.Debug("write model package", "err", err)
	}
}

func (h *modelsHTTP) json(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if err := json.NewEncoder(w).Encode(v); err != nil {
		h.log.Warn("write JSON reply", "err", err)
	}
}

func (h *modelsHTTP) fail(w http.ResponseWriter, err error) {
	code := ErrorCode(err)
	status, convErr := strconv.Atoi(code)
	if convErr != nil || status < 400 || status > 599 {
		status = http.StatusInternalServerError
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}{strconv.Itoa(status), err.Error()})
}
