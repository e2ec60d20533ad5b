package api

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/nats-io/nats.go/micro"
)

// ModelStore serves the models.* endpoints (cloud/internal/modelstore).
// Its errors carry codes through WithCode or BadRequestError.
type ModelStore interface {
	Push(ctx context.Context, req ModelPushRequest) (ModelDetail, error)
	List(ctx context.Context) ([]ModelInfo, error)
	Show(ctx context.Context, ref ModelRef) (ModelDetail, error)
	Pull(ctx context.Context, ref ModelRef) (ModelInfo, error)
	Delete(ctx context.Context, ref ModelRef) (ModelInfo, error)
	KeyInfo() KeyInfo
}

type modelHandlers struct {
	store   ModelStore
	timeout func() (context.Context, context.CancelFunc)
}

func (h *modelHandlers) endpoints() map[string]func(micro.Request) error {
	return map[string]func(micro.Request) error{
		EndpointModelsPush:   h.push,
		EndpointModelsList:   h.list,
		EndpointModelsShow:   h.refCall(EndpointModelsShow, func(ctx context.Context, r ModelRef) (any, error) { return h.store.Show(ctx, r) }),
		EndpointModelsPull:   h.refCall(EndpointModelsPull, func(ctx context.Context, r ModelRef) (any, error) { return h.store.Pull(ctx, r) }),
		EndpointModelsDelete: h.refCall(EndpointModelsDelete, func(ctx context.Context, r ModelRef) (any, error) { return h.store.Delete(ctx, r) }),
		EndpointKeysPublic:   func(req micro.Request) error { return req.RespondJSON(h.store.KeyInfo()) },
	}
}

func (h *modelHandlers) push(req micro.Request) error {
	var r ModelPushRequest
	if err := json.Unmarshal(req.Data(), &r); err != nil {
		return &BadRequestError{fmt.Errorf("models.push: request must be JSON like {\"name\":\"vib\",\"version\":2,\"role\":\"edge\",\"upload\":\"%s...\"}: %w", UploadPrefix, err)}
	}
	ctx, cancel := h.timeout()
	defer cancel()
	d, err := h.store.Push(ctx, r)
	if err != nil {
		return err
	}
	return req.RespondJSON(d)
}

func (h *modelHandlers) list(req micro.Request) error {
	ctx, cancel := h.timeout()
	defer cancel()
	ms, err := h.store.List(ctx)
	if err != nil {
		return err
	}
	if ms == nil {
		ms = []ModelInfo{}
	}
	return req.RespondJSON(ms)
}

func (h *modelHandlers) refCall(endpoint string, fn func(context.Context, ModelRef) (any, error)) func(micro.Request) error {
	return func(req micro.Request) error {
		var r ModelRef
		if err := json.Unmarshal(req.Data(), &r); err != nil {
			return &BadRequestError{fmt.Errorf("%s: request must be JSON like {\"name\":\"vib\",\"version\":2}: %w", endpoint, err)}
		}
		ctx, cancel := h.timeout()
		defer cancel()
		out, err := fn(ctx, r)
		if err != nil {
			return err
		}
		return req.RespondJSON(out)
	}
}
