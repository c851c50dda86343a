package admin

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relayctl/relayctl/pkg/events"
	"github.com/relayctl/relayctl/pkg/queue"
)

type fixture struct {
	q       *queue.Queue
	c       *Client
	retried chan []string
	bounced chan string
	sock    string
}

func setup(t *testing.T) *fixture {
	t.Helper()
	dir, err := os.MkdirTemp("", "adm")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	q, err := queue.Open(filepath.Join(dir, "spool"), queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	logPath := filepath.Join(dir, "delivery.log")
	fx := &fixture{q: q, retried: make(chan []string, 100), bounced: make(chan string, 10), sock: filepath.Join(dir, "spool", "admin.sock")}
	s := &Server{
		Queue:       q,
		RetryNow:    func(ids ...string) { fx.retried <- ids },
		Bounce:      func(env *queue.Envelope, reason string) error { fx.bounced <- env.ID + ": " + reason; return nil },
		DeliveryLog: logPath,
	}
	l, err := Listen(fx.sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Serve(ctx, l); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	fx.c = NewClient(fx.sock)
	return fx
}

func (fx *fixture) enqueue(t *testing.T, from string, state queue.State, rcpts ...string) string {
	t.Helper()
	env := &queue.Envelope{From: from, Received: time.Now()}
	for _, r := range rcpts {
		env.Recipients = append(env.Recipients, queue.Recipient{Address: r, State: state, NextAttempt: time.Now().Add(time.Hour)})
	}
	id, err := fx.q.Enqueue(env, strings.NewReader("From: "+from+"\r\nSubject: hello\r\n world\r\n\r\nbody\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestSocketIsPrivate(t *testing.T) {
	fx := setup(t)
	fi, err := os.Stat(fx.sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || fi.Mode()&os.ModeSocket == 0 {
		t.Errorf("socket mode %v", fi.Mode())
	}
	if _, err := Listen(fx.sock); err == nil || !strings.Contains(err.Error(), "another relay") {
		t.Errorf("second Listen: %v", err)
	}
}

func TestStaleSocketReplaced(t *testing.T) {
	dir, _ := os.MkdirTemp("", "adm")
	defer os.RemoveAll(dir)
	p := filepath.Join(dir, "a.sock")
	l, err := Listen(p)
	if err != nil {
		t.Fatal(err)
	}
	// simulate a crash: the file stays, nobody listens
	l.(interface{ SetUnlinkOnClose(bool) }).SetUnlinkOnClose(false)
	l.Close()
	if l, err = Listen(p); err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	l.Close()
}

func TestListShowFilter(t *testing.T) {
	fx := setup(t)
	a := fx.enqueue(t, "app@example.com", queue.StateDeferred, "x@gmail.example", "y@yahoo.example")
	fx.enqueue(t, "app@example.com", queue.StateQueued, "z@yahoo.example")
	w, _ := os.OpenFile(filepath.Join(filepath.Dir(filepath.Dir(fx.sock)), "delivery.log"), os.O_CREATE|os.O_WRONLY, 0o600)
	ew := events.NewWriter(w)
	ew.Write(events.Event{QueueID: a, Recipient: "x@gmail.example", Result: events.Deferred, Code: 421, Response: "421 4.7.0 slow down"})
	ew.Write(events.Event{QueueID: "other", Recipient: "q@example.org", Result: events.Delivered})
	w.Close()
	ctx := context.Background()
	all, err := fx.c.List(ctx, Filter{})
	if err != nil || len(all) != 2 {
		t.Fatalf("list %v %v", all, err)
	}
	if l, _ := fx.c.List(ctx, Filter{Domain: "gmail.example"}); len(l) != 1 || l[0].ID != a {
		t.Errorf("domain filter %v", l)
	}
	if l, _ := fx.c.List(ctx, Filter{State: queue.StateQueued}); len(l) != 1 || l[0].ID == a {
		t.Errorf("state filter %v", l)
	}
	if _, err := fx.c.List(ctx, Filter{State: "bogus"}); err == nil {
		t.Error("bad state accepted")
	}
	m, err := fx.c.Show(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Headers) != 2 || m.Headers[1].Value != "hello world" || len(m.History) != 1 || m.History[0].Code != 421 {
		t.Errorf("show %+v", m)
	}
	var ae *APIError
	if _, err := fx.c.Show(ctx, "nosuchid"); !errors.As(err, &ae) || !ae.NotFound() {
		t.Errorf("missing id: %v", err)
	}
}

func TestRetryHoldReleaseDelete(t *testing.T) {
	fx := setup(t)
	ctx := context.Background()
	a := fx.enqueue(t, "app@example.com", queue.StateDeferred, "x@gmail.example")
	b := fx.enqueue(t, "app@example.com", queue.StateDeferred, "y@yahoo.example")

	if r, err := fx.c.Retry(ctx, a); err != nil || r.Recipients != 1 {
		t.Fatalf("retry %v %v", r, err)
	}
	if ids := <-fx.retried; len(ids) != 1 || ids[0] != a {
		t.Errorf("engine woken for %v", ids)
	}
	if due := fx.q.Due(time.Now()); len(due) != 1 || due[0] != a {
		t.Errorf("due after retry: %v", due)
	}
	if r, err := fx.c.RetryAll(ctx, "yahoo.example"); err != nil || len(r.IDs) != 1 || r.IDs[0] != b {
		t.Errorf("retry --domain %v %v", r, err)
	}
	<-fx.retried

	if _, err := fx.c.Hold(ctx, a); err != nil {
		t.Fatal(err)
	}
	env, _ := fx.q.Get(a)
	if env.Recipients[0].State != queue.StateHeld {
		t.Errorf("state %s", env.Recipients[0].State)
	}
	for _, id := range fx.q.Due(time.Now()) {
		if id == a {
			t.Error("held message is due")
		}
	}
	var ae *APIError
	if _, err := fx.c.Retry(ctx, a); !errors.As(err, &ae) || ae.Status != 409 {
		t.Errorf("retry of held: %v", err)
	}
	if r, err := fx.c.Release(ctx, a); err != nil || r.Recipients != 1 {
		t.Fatalf("release %v %v", r, err)
	}
	env, _ = fx.q.Get(a)
	if env.Recipients[0].State != queue.StateQueued {
		t.Errorf("released state %s", env.Recipients[0].State)
	}

	if _, err := fx.c.Delete(ctx, a, true, ""); err != nil {
		t.Fatal(err)
	}
	if msg := <-fx.bounced; !strings.HasPrefix(msg, a+": deleted from the queue") {
		t.Errorf("bounce %q", msg)
	}
	if _, err := fx.q.Get(a); !errors.Is(err, queue.ErrNotFound) {
		t.Errorf("still queued: %v", err)
	}
	if _, err := fx.c.Delete(ctx, a, false, ""); !errors.As(err, &ae) || !ae.NotFound() {
		t.Errorf("second delete: %v", err)
	}
}

// Admin actions racing with a simulated delivery engine updating the
// same messages (each message gets each action once, in any order):
// no update is lost,
// and every envelope stays readable.
func TestConcurrentAdminAndDelivery(t *testing.T) {
	fx := setup(t)
	ctx := context.Background()
	var ids []string
	for range 20 {
		ids = append(ids, fx.enqueue(t, "app@example.com", queue.StateDeferred, "a@x.example", "b@y.example"))
	}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i, id := range ids {
				switch (i + w) % 4 {
				case 0:
					fx.c.Hold(ctx, id)
				case 1:
					fx.c.Release(ctx, id)
				case 2:
					fx.c.Retry(ctx, id)
				case 3: // the "engine": records an attempt
					fx.q.Update(id, func(env *queue.Envelope) error {
						env.Recipients[0].Attempts++
						env.Recipients[0].LastResponse = "421 try later"
						return nil
					})
				}
			}
		}()
	}
	go func() {
		for range fx.retried {
		}
	}()
	wg.Wait()
	list, err := fx.c.List(ctx, Filter{})
	if err != nil || len(list) != 20 {
		t.Fatalf("%d messages after the race (%v), want 20", len(list), err)
	}
	for _, e := range list {
		if len(e.Recipients) != 2 || e.Recipients[0].Attempts != 1 || e.Recipients[0].LastResponse != "421 try later" {
			t.Errorf("%s: %+v", e.ID, e.Recipients)
		}
	}
}
