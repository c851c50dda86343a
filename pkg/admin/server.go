// Package admin is the relay's local administration endpoint: HTTP/1.1
// (RFC 9112) with JSON bodies over a unix socket that only the relay's
// user can open (mode 0600, inside the 0700 spool directory), never a
// network port. `relayctl queue …` talks to it through Client; the
// Prometheus /metrics handler can be mounted on it too.
//
// Every change goes through queue.Update or queue.Remove, which lock the
// message and rewrite its envelope atomically, so admin actions and the
// delivery engine may work on the same message at the same time without
// corrupting it; the later writer wins for a recipient's state (a hold
// does not interrupt an attempt already under way).
package admin

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/textproto"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/relayctl/relayctl/pkg/events"
	"github.com/relayctl/relayctl/pkg/queue"
)

// Queue is what the admin server needs of the queue (*queue.Queue).
type Queue interface {
	List() ([]*queue.Envelope, error)
	Get(id string) (*queue.Envelope, error)
	Content(id string) (io.ReadCloser, error)
	Update(id string, fn func(*queue.Envelope) error) error
	Remove(id string) error
}

var _ Queue = (*queue.Queue)(nil)

// Server answers admin requests.
type Server struct {
	Queue Queue
	// RetryNow wakes the delivery engine for these ids (after their
	// recipients were made due); nil when there is no engine.
	RetryNow func(ids ...string)
	// Bounce sends a delivery status notification (RFC 3464) to the
	// sender of env for its pending recipients, giving reason; used by
	// delete --bounce. nil: --bounce is refused.
	Bounce func(env *queue.Envelope, reason string) error
	// DeliveryLog is the events file read for a message's history ("":
	// no history).
	DeliveryLog string
	// Metrics, when set, is served at /metrics.
	Metrics http.Handler
	// Throttles, when set, reports the destinations the relay is holding
	// back (GET /v1/throttles).
	Throttles func() any
	Log       *slog.Logger
	Now       func() time.Time
}

// Handler returns the HTTP handler.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/queue", s.list)
	mux.HandleFunc("GET /v1/queue/{id}", s.show)
	mux.HandleFunc("POST /v1/queue/{id}/retry", s.retryOne)
	mux.HandleFunc("POST /v1/retry", s.retryMany)
	mux.HandleFunc("POST /v1/queue/{id}/hold", s.hold)
	mux.HandleFunc("POST /v1/queue/{id}/release", s.release)
	mux.HandleFunc("DELETE /v1/queue/{id}", s.delete)
	mux.HandleFunc("GET /v1/health", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	if s.Metrics != nil {
		mux.Handle("GET /metrics", s.Metrics)
	}
	if s.Throttles != nil {
		mux.HandleFunc("GET /v1/throttles", func(w http.ResponseWriter, _ *http.Request) {
			writeJSON(w, http.StatusOK, s.Throttles())
		})
	}
	return mux
}

func (s *Server) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Server) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.New(slog.DiscardHandler)
}

// Listen binds the unix socket at path with mode 0600, in a directory
// created 0700 if missing. A stale socket left by a crash is replaced;
// one another process still answers on is an error.
func Listen(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("admin: %w", err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("admin: %s exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("admin: %s: another relay is running on this spool", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("admin: remove stale socket: %w", err)
		}
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("admin: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("admin: %w", err)
	}
	return l, nil
}

// Serve answers on l until ctx ends.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	err := srv.Serve(l)
	<-done
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Message is one queued message as the admin API shows it.
type Message struct {
	*queue.Envelope
	// Headers are the message's header fields, in order (show only).
	Headers []Header `json:"headers,omitempty"`
	// History is every delivery attempt in the delivery log (show only).
	History []events.Event `json:"history,omitempty"`
}

// Header is one header field.
type Header struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Error is the body of every non-2xx answer.
type Error struct {
	Error string `json:"error"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}

func writeErr(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, queue.ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, errBadRequest):
		code = http.StatusBadRequest
	case errors.Is(err, errConflict):
		code = http.StatusConflict
	}
	writeJSON(w, code, Error{err.Error()})
}

var (
	errBadRequest = errors.New("bad request")
	errConflict   = errors.New("conflict")
)

// Filter selects messages: by recipient domain and/or recipient state.
type Filter struct {
	Domain string
	State  queue.State
}

// Match reports whether env has a recipient matching f.
func (f Filter) Match(env *queue.Envelope) bool {
	return slices.ContainsFunc(env.Recipients, func(r queue.Recipient) bool {
		if f.State != "" && r.State != f.State {
			return false
		}
		return f.Domain == "" || atDomain(r.Address, f.Domain)
	})
}

// atDomain reports whether addr is at domain (a trailing dot ignored).
func atDomain(addr, domain string) bool {
	_, d, _ := strings.Cut(addr, "@")
	return strings.EqualFold(d, strings.TrimSuffix(domain, "."))
}

func filterOf(r *http.Request) (Filter, error) {
	f := Filter{Domain: r.URL.Query().Get("domain"), State: queue.State(r.URL.Query().Get("state"))}
	switch f.State {
	case "", queue.StateQueued, queue.StateDeferred, queue.StateHeld, queue.StateDelivered, queue.StateBounced:
	default:
		return f, fmt.Errorf("%w: state %q (want queued, deferred, held, delivered or bounced)", errBadRequest, f.State)
	}
	return f, nil
}

func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	f, err := filterOf(r)
	if err != nil {
		writeErr(w, err)
		return
	}
	envs, err := s.Queue.List()
	if err != nil {
		writeErr(w, err)
		return
	}
	out := []*queue.Envelope{}
	for _, e := range envs {
		if f.Match(e) {
			out = append(out, e)
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) show(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	env, err := s.Queue.Get(id)
	if err != nil {
		writeErr(w, err)
		return
	}
	m := Message{Envelope: env}
	if rc, err := s.Queue.Content(id); err == nil {
		m.Headers = readHeaders(rc)
		rc.Close()
	}
	if s.DeliveryLog != "" {
		if fh, err := os.Open(s.DeliveryLog); err == nil {
			events.Read(fh, func(e events.Event) error {
				if e.QueueID == id {
					m.History = append(m.History, e)
				}
				return nil
			})
			fh.Close()
		}
	}
	writeJSON(w, http.StatusOK, m)
}

// readHeaders returns the header section's fields, unfolded.
func readHeaders(r io.Reader) []Header {
	tp := textproto.NewReader(bufio.NewReader(io.LimitReader(r, 1<<20)))
	var out []Header
	var cur *Header
	for {
		line, err := tp.ReadLine()
		if err != nil || line == "" {
			break
		}
		if (line[0] == ' ' || line[0] == '\t') && cur != nil {
			cur.Value += " " + strings.TrimSpace(line)
			continue
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			break
		}
		out = append(out, Header{Name: name, Value: strings.TrimSpace(value)})
		cur = &out[len(out)-1]
	}
	return out
}

// ActionResult answers retry, hold, release and delete.
type ActionResult struct {
	IDs []string `json:"ids"`
	// Recipients is how many recipients changed state.
	Recipients int `json:"recipients"`
}

// makeDue sets every queued or deferred recipient of id (at domain,
// when not "") due now; it reports how many.
func (s *Server) makeDue(id string, now time.Time, domain string) (int, error) {
	n := 0
	err := s.Queue.Update(id, func(env *queue.Envelope) error {
		n = 0
		for i := range env.Recipients {
			rc := &env.Recipients[i]
			if domain != "" && !atDomain(rc.Address, domain) {
				continue
			}
			if rc.State == queue.StateQueued || rc.State == queue.StateDeferred {
				rc.NextAttempt = now
				n++
			}
		}
		return nil
	})
	return n, err
}

func (s *Server) retryOne(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	n, err := s.makeDue(id, s.now(), "")
	if err != nil {
		writeErr(w, err)
		return
	}
	if n == 0 {
		writeErr(w, fmt.Errorf("%w: %s has no queued or deferred recipient (held ones need release)", errConflict, id))
		return
	}
	if s.RetryNow != nil {
		s.RetryNow(id)
	}
	s.log().Info("admin: retry", "id", id)
	writeJSON(w, http.StatusOK, ActionResult{IDs: []string{id}, Recipients: n})
}

func (s *Server) retryMany(w http.ResponseWriter, r *http.Request) {
	f, err := filterOf(r)
	if err != nil {
		writeErr(w, err)
		return
	}
	if f.Domain == "" && r.URL.Query().Get("all") != "1" {
		writeErr(w, fmt.Errorf("%w: give all=1 or domain=", errBadRequest))
		return
	}
	envs, err := s.Queue.List()
	if err != nil {
		writeErr(w, err)
		return
	}
	res := ActionResult{IDs: []string{}}
	now := s.now()
	for _, e := range envs {
		if !(Filter{Domain: f.Domain}).Match(e) {
			continue
		}
		n, err := s.makeDue(e.ID, now, f.Domain)
		if errors.Is(err, queue.ErrNotFound) {
			continue // delivered meanwhile
		}
		if err != nil {
			writeErr(w, err)
			return
		}
		if n > 0 {
			res.IDs = append(res.IDs, e.ID)
			res.Recipients += n
		}
	}
	if s.RetryNow != nil && len(res.IDs) > 0 {
		s.RetryNow(res.IDs...)
	}
	s.log().Info("admin: retry", "count", len(res.IDs), "domain", f.Domain)
	writeJSON(w, http.StatusOK, res)
}

func (s *Server) hold(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	n := 0
	err := s.Queue.Update(id, func(env *queue.Envelope) error {
		n = 0
		for i := range env.Recipients {
			rc := &env.Recipients[i]
			if rc.State == queue.StateQueued || rc.State == queue.StateDeferred {
				rc.State = queue.StateHeld
				n++
			}
		}
		return nil
	})
	if err != nil {
		writeErr(w, err)
		return
	}
	s.log().Info("admin: hold", "id", id, "recipients", n)
	writeJSON(w, http.StatusOK, ActionResult{IDs: []string{id}, Recipients: n})
}

func (s *Server) release(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	now := s.now()
	n := 0
	err := s.Queue.Update(id, func(env *queue.Envelope) error {
		n = 0
		for i := range env.Recipients {
			rc := &env.Recipients[i]
			if rc.State != queue.StateHeld {
				continue
			}
			rc.State = queue.StateQueued
			if rc.Attempts > 0 {
				rc.State = queue.StateDeferred
			}
			rc.NextAttempt = now
			n++
		}
		return nil
	})
	if err != nil {
		writeErr(w, err)
		return
	}
	if n > 0 && s.RetryNow != nil {
		s.RetryNow(id)
	}
	s.log().Info("admin: release", "id", id, "recipients", n)
	writeJSON(w, http.StatusOK, ActionResult{IDs: []string{id}, Recipients: n})
}

func (s *Server) delete(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	bounce := r.URL.Query().Get("bounce") == "1"
	env, err := s.Queue.Get(id)
	if err != nil {
		writeErr(w, err)
		return
	}
	n := 0
	for _, rc := range env.Recipients {
		if !rc.State.Done() {
			n++
		}
	}
	if bounce {
		if s.Bounce == nil {
			writeErr(w, fmt.Errorf("%w: this relay cannot send bounces", errConflict))
			return
		}
		reason := r.URL.Query().Get("reason")
		if reason == "" {
			reason = "deleted from the queue by the postmaster"
		}
		if err := s.Bounce(env, reason); err != nil {
			writeErr(w, fmt.Errorf("bounce %s: %w", id, err))
			return
		}
	}
	if err := s.Queue.Remove(id); err != nil {
		writeErr(w, err)
		return
	}
	s.log().Info("admin: delete", "id", id, "bounce", bounce, "pending_recipients", n)
	writeJSON(w, http.StatusOK, ActionResult{IDs: []string{id}, Recipients: n})
}
