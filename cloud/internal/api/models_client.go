package api

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/outpost-iot/outpost/shared/names"
)

// PushModel uploads model into the outpost_models object store (under
// UploadPrefix; the object store chunks it, so files larger than a NATS
// message are fine) and asks the service to validate, sign and store it
// as req describes. req.Upload is set by PushModel.
func (c *Client) PushModel(ctx context.Context, model []byte, req ModelPushRequest) (ModelDetail, error) {
	var out ModelDetail
	obj, err := c.models(ctx)
	if err != nil {
		return out, err
	}
	var id [12]byte
	if _, err := rand.Read(id[:]); err != nil {
		return out, fmt.Errorf("upload id: %w", err)
	}
	req.Upload = UploadPrefix + hex.EncodeToString(id[:])
	if _, err := obj.Put(ctx, jetstream.ObjectMeta{Name: req.Upload, Description: "model upload for " + req.Name}, bytes.NewReader(model)); err != nil {
		return out, fmt.Errorf("upload the model file to %s: %w", names.ObjectModels, err)
	}
	body, err := json.Marshal(req)
	if err != nil {
		return out, fmt.Errorf("api: encode models.push request: %w", err)
	}
	return out, c.call(ctx, EndpointModelsPush, body, &out)
}

// Models lists the stored model versions.
func (c *Client) Models(ctx context.Context) ([]ModelInfo, error) {
	var out []ModelInfo
	return out, c.call(ctx, EndpointModelsList, nil, &out)
}

// ShowModel returns a model version's manifest and verification result.
func (c *Client) ShowModel(ctx context.Context, ref ModelRef) (ModelDetail, error) {
	var out ModelDetail
	return out, c.refCall(ctx, EndpointModelsShow, ref, &out)
}

// PullModel resolves ref and reads its signed package blob (see
// shared/modelpkg) from the object store. It does not verify it.
func (c *Client) PullModel(ctx context.Context, ref ModelRef) (ModelInfo, []byte, error) {
	var mi ModelInfo
	if err := c.refCall(ctx, EndpointModelsPull, ref, &mi); err != nil {
		return mi, nil, err
	}
	obj, err := c.models(ctx)
	if err != nil {
		return mi, nil, err
	}
	blob, err := obj.GetBytes(ctx, mi.Object)
	if err != nil {
		return mi, nil, fmt.Errorf("read %s from %s: %w", mi.Object, names.ObjectModels, err)
	}
	return mi, blob, nil
}

// DeleteModel deletes a model version and returns what it was.
func (c *Client) DeleteModel(ctx context.Context, ref ModelRef) (ModelInfo, error) {
	var out ModelInfo
	return out, c.refCall(ctx, EndpointModelsDelete, ref, &out)
}

// PublicKey returns the service's model-signing public key.
func (c *Client) PublicKey(ctx context.Context) (KeyInfo, error) {
	var out KeyInfo
	return out, c.call(ctx, EndpointKeysPublic, nil, &out)
}

func (c *Client) refCall(ctx context.Context, endpoint string, ref ModelRef, out any) error {
	body, err := json.Marshal(ref)
	if err != nil {
		return fmt.Errorf("api: encode %s request: %w", endpoint, err)
	}
	return c.call(ctx, endpoint, body, out)
}

func (c *Client) models(ctx context.Context) (jetstream.ObjectStore, error) {
	js, err := jetstream.New(c.nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	obj, err := js.ObjectStore(ctx, names.ObjectModels)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, fmt.Errorf("object store %s does not exist (has outpost-cloud started on this NATS server?)", names.ObjectModels)
	}
	if err != nil {
		return nil, fmt.Errorf("open object store %s: %w", names.ObjectModels, err)
	}
	return obj, nil
}
