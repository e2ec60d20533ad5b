package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/outpost-iot/outpost/shared/names"
	"github.com/outpost-iot/outpost/shared/wire"
)

// Client calls the fleet API over a NATS connection.
type Client struct {
	nc *nats.Conn
}

// NewClient returns a client that uses nc.
func NewClient(nc *nats.Conn) *Client { return &Client{nc: nc} }

// Devices lists the fleet registry.
func (c *Client) Devices(ctx context.Context) ([]Device, error) {
	var out []Device
	return out, c.call(ctx, EndpointDevicesList, nil, &out)
}

// Events lists stored events matching q.
func (c *Client) Events(ctx context.Context, q EventsQuery) ([]Event, error) {
	req, err := json.Marshal(q)
	if err != nil {
		return nil, fmt.Errorf("api: encode events query: %w", err)
	}
	var out []Event
	return out, c.call(ctx, EndpointEventsList, req, &out)
}

// Verdicts lists stored verdicts matching q.
func (c *Client) Verdicts(ctx context.Context, q EventsQuery) ([]wire.Verdict, error) {
	req, err := json.Marshal(q)
	if err != nil {
		return nil, fmt.Errorf("api: encode verdicts query: %w", err)
	}
	var out []wire.Verdict
	return out, c.call(ctx, EndpointVerdicts, req, &out)
}

// Version asks the service for its version.
func (c *Client) Version(ctx context.Context) (VersionInfo, error) {
	var out VersionInfo
	return out, c.call(ctx, EndpointVersion, nil, &out)
}

func (c *Client) call(ctx context.Context, endpoint string, req []byte, out any) error {
	subject := names.APISubject(endpoint)
	msg, err := c.nc.RequestWithContext(ctx, subject, req)
	if errors.Is(err, nats.ErrNoResponders) {
		return fmt.Errorf("no outpost-cloud service answers %s on %s (is outpost-cloud running and connected to this NATS server?)", endpoint, subject)
	}
	if err != nil {
		return fmt.Errorf("request %s: %w", subject, err)
	}
	if code := msg.Header.Get(micro.ErrorCodeHeader); code != "" {
		return &Error{Code: code, Message: msg.Header.Get(micro.ErrorHeader)}
	}
	if err := json.Unmarshal(msg.Data, out); err != nil {
		return fmt.Errorf("decode %s reply: %w", endpoint, err)
	}
	return nil
}
