package webhook

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/relayctl/relayctl/pkg/events"
)

var secret = []byte("0123456789abcdef-secret")

func noSleep(context.Context, time.Duration) error { return nil }

type receiver struct {
	mu     sync.Mutex
	got    []events.Event
	status []int // answers to give in turn, then 200
	calls  atomic.Int32
	bad    atomic.Int32
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rc.calls.Add(1)
	body, _ := io.ReadAll(r.Body)
	if err := Verify(secret, r.Header.Get(HeaderTimestamp), r.Header.Get(HeaderSignature), body, time.Now(), 5*time.Minute); err != nil {
		rc.bad.Add(1)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if len(rc.status) > 0 {
		code := rc.status[0]
		rc.status = rc.status[1:]
		w.WriteHeader(code)
		return
	}
	var e events.Event
	json.Unmarshal(body, &e)
	rc.got = append(rc.got, e)
}

func (rc *receiver) events() []events.Event {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]events.Event(nil), rc.got...)
}

func start(t *testing.T, cfg Config) (*Sender, func()) {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	return s, func() { cancel(); <-done }
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("timed out")
}

func TestSignedEventsInOrderWithRetries(t *testing.T) {
	rc := &receiver{status: []int{503, 429, 500}}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	s, stop := start(t, Config{URL: srv.URL, Secret: secret, Sleep: noSleep})
	defer stop()
	for i, r := range []events.Result{events.Delivered, events.Deferred, events.Bounced, events.Expired} {
		s.Send(events.Event{QueueID: "q", Recipient: string(rune('a'+i)) + "@example.org", Result: r})
	}
	waitFor(t, func() bool { return len(rc.events()) == 4 })
	got := rc.events()
	if got[0].Recipient != "a@example.org" || got[3].Result != events.Expired {
		t.Errorf("order %+v", got)
	}
	st := s.Stats()
	if st.Sent != 4 || st.Retries != 3 || st.Failed != 0 || rc.bad.Load() != 0 {
		t.Errorf("stats %+v, bad signatures %d", st, rc.bad.Load())
	}
}

func TestPermanentFailureNotRetried(t *testing.T) {
	rc := &receiver{status: []int{400}}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	s, stop := start(t, Config{URL: srv.URL, Secret: secret, Sleep: noSleep})
	defer stop()
	s.Send(events.Event{Result: events.Bounced})
	waitFor(t, func() bool { return s.Stats().Failed == 1 })
	if rc.calls.Load() != 1 {
		t.Errorf("%d calls, want 1", rc.calls.Load())
	}
}

func TestGivesUpAfterAttempts(t *testing.T) {
	rc := &receiver{status: []int{500, 500, 500, 500, 500}}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	s, stop := start(t, Config{URL: srv.URL, Secret: secret, Sleep: noSleep, Attempts: 3})
	defer stop()
	s.Send(events.Event{Result: events.Bounced})
	waitFor(t, func() bool { return s.Stats().Failed == 1 })
	if rc.calls.Load() != 3 {
		t.Errorf("%d calls, want 3", rc.calls.Load())
	}
}

func TestFilterAndDrop(t *testing.T) {
	s, err := New(Config{URL: "http://127.0.0.1:1/hook", Secret: secret, Buffer: 2, Results: []events.Result{events.Bounced}})
	if err != nil {
		t.Fatal(err)
	}
	s.Send(events.Event{Result: events.Delivered}) // not configured
	for range 3 {
		s.Send(events.Event{Result: events.Bounced})
	}
	if s.Pending() != 2 || s.Stats().Dropped != 1 {
		t.Errorf("pending %d stats %+v", s.Pending(), s.Stats())
	}
}

func TestConfigAndVerify(t *testing.T) {
	for _, cfg := range []Config{{URL: "ftp://x/y", Secret: secret}, {URL: "http://x/y", Secret: []byte("short")}, {URL: "::", Secret: secret}} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%+v accepted", cfg)
		}
	}
	now := time.Unix(1_800_000_000, 0)
	body := []byte(`{"a":1}`)
	sig := Sign(secret, "1800000000", body)
	if Verify(secret, "1800000000", sig, body, now, time.Minute) != nil {
		t.Error("valid signature refused")
	}
	if Verify(secret, "1800000000", sig, []byte(`{"a":2}`), now, time.Minute) == nil {
		t.Error("tampered body accepted")
	}
	if Verify(secret, "1800000000", sig, body, now.Add(time.Hour), time.Minute) == nil {
		t.Error("replay accepted")
	}
}
