package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/relayctl/relayctl/pkg/queue"
)

// Client talks to a running relay's admin socket.
type Client struct {
	Socket string
	http   *http.Client
}

// UnreachableError: nothing answers on the socket (the relay is not
// running, or runs with another spool).
type UnreachableError struct {
	Socket string
	Err    error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("admin: no relay answers on %s (is `relayctl serve` running with this spool?): %v", e.Socket, e.Err)
}
func (e *UnreachableError) Unwrap() error { return e.Err }

// APIError is a refusal from the relay.
type APIError struct {
	Status  int
	Message string
}

func (e *APIError) Error() string { return e.Message }

// NotFound reports a 404 (no such message).
func (e *APIError) NotFound() bool { return e.Status == http.StatusNotFound }

// NewClient returns a client for the socket at path.
func NewClient(path string) *Client {
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}}
	return &Client{Socket: path, http: &http.Client{Transport: tr, Timeout: 60 * time.Second}}
}

func (c *Client) do(ctx context.Context, method, path string, q url.Values, out any) error {
	u := "http://relayctl" + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return fmt.Errorf("admin: %w", err)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return &UnreachableError{c.Socket, err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return &UnreachableError{c.Socket, err}
	}
	if resp.StatusCode/100 != 2 {
		var e Error
		if json.Unmarshal(body, &e) != nil || e.Error == "" {
			e.Error = resp.Status
		}
		return &APIError{Status: resp.StatusCode, Message: e.Error}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("admin: bad answer: %w", err)
	}
	return nil
}

// List returns the queued messages matching f.
func (c *Client) List(ctx context.Context, f Filter) ([]*queue.Envelope, error) {
	q := url.Values{}
	if f.Domain != "" {
		q.Set("domain", f.Domain)
	}
	if f.State != "" {
		q.Set("state", string(f.State))
	}
	var out []*queue.Envelope
	return out, c.do(ctx, http.MethodGet, "/v1/queue", q, &out)
}

// Show returns one message with its headers and delivery history.
func (c *Client) Show(ctx context.Context, id string) (*Message, error) {
	var m Message
	if err := c.do(ctx, http.MethodGet, "/v1/queue/"+url.PathEscape(id), nil, &m); err != nil {
		return nil, err
	}
	return &m, nil
}

// Retry makes one message due now.
func (c *Client) Retry(ctx context.Context, id string) (ActionResult, error) {
	var r ActionResult
	return r, c.do(ctx, http.MethodPost, "/v1/queue/"+url.PathEscape(id)+"/retry", nil, &r)
}

// RetryAll makes every message (domain "") or those with a recipient in
// domain due now.
func (c *Client) RetryAll(ctx context.Context, domain string) (ActionResult, error) {
	q := url.Values{}
	if domain == "" {
		q.Set("all", "1")
	} else {
		q.Set("domain", domain)
	}
	var r ActionResult
	return r, c.do(ctx, http.MethodPost, "/v1/retry", q, &r)
}

// Hold stops delivery attempts for a message's pending recipients.
func (c *Client) Hold(ctx context.Context, id string) (ActionResult, error) {
	var r ActionResult
	return r, c.do(ctx, http.MethodPost, "/v1/queue/"+url.PathEscape(id)+"/hold", nil, &r)
}

// Release makes held recipients due now.
func (c *Client) Release(ctx context.Context, id string) (ActionResult, error) {
	var r ActionResult
	return r, c.do(ctx, http.MethodPost, "/v1/queue/"+url.PathEscape(id)+"/release", nil, &r)
}

// Delete removes a message; with bounce, its sender gets a DSN first.
func (c *Client) Delete(ctx context.Context, id string, bounce bool, reason string) (ActionResult, error) {
	q := url.Values{}
	if bounce {
		q.Set("bounce", "1")
		if reason != "" {
			q.Set("reason", reason)
		}
	}
	var r ActionResult
	return r, c.do(ctx, http.MethodDelete, "/v1/queue/"+url.PathEscape(id), q, &r)
}

// Metrics returns the Prometheus exposition text.
func (c *Client) Metrics(ctx context.Context) (string, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://relayctl/metrics", nil)
	resp, err := c.http.Do(req)
	if err != nil {
		return "", &UnreachableError{c.Socket, err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", &APIError{resp.StatusCode, resp.Status}
	}
	return string(b), err
}

// Throttles decodes the relay's destination throttle states into out.
func (c *Client) Throttles(ctx context.Context, out any) error {
	return c.do(ctx, http.MethodGet, "/v1/throttles", nil, out)
}
