package queuecmd_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/relayctl/relayctl/cmd/cmdtest"
	"github.com/relayctl/relayctl/pkg/admin"
	"github.com/relayctl/relayctl/pkg/queue"
)

// startAdmin serves a real queue on a real admin socket (what serve does).
func startAdmin(t *testing.T) (*queue.Queue, string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "qc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	q, err := queue.Open(filepath.Join(dir, "spool"), queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	sock := filepath.Join(dir, "spool", "admin.sock")
	l, err := admin.Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { (&admin.Server{Queue: q}).Serve(ctx, l); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	t.Setenv("RELAYCTL_SERVE_SPOOL", filepath.Join(dir, "spool"))
	return q, sock
}

func enqueue(t *testing.T, q *queue.Queue, rcpts ...string) string {
	t.Helper()
	env := &queue.Envelope{From: "app@example.com", Received: time.Now().Add(-90 * time.Minute), Stream: "bulk"}
	for _, r := range rcpts {
		env.Recipients = append(env.Recipients, queue.Recipient{Address: r, State: queue.StateDeferred, Attempts: 2,
			NextAttempt: time.Now().Add(20 * time.Minute), LastResponse: "421 4.7.0 [TS01] Messages from 192.0.2.1 temporarily deferred due to user complaints"})
	}
	id, err := q.Enqueue(env, strings.NewReader("From: app@example.com\r\nSubject: hi\r\n\r\nbody\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestQueueCommands(t *testing.T) {
	q, _ := startAdmin(t)
	a := enqueue(t, q, "x@yahoo.example", "y@gmail.example")
	b := enqueue(t, q, "z@gmail.example")

	r := cmdtest.Run(t, "queue", "list")
	if r.Code != 0 {
		t.Fatalf("list: %d %s", r.Code, r.Stderr)
	}
	for _, want := range []string{a, "1h30m  app@example.com", "deferred  x@yahoo.example  2 attempt(s), next in 19m", "421 4.7.0 [TS01]", "2 message(s), 3 recipient(s) pending"} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("list lacks %q:\n%s", want, r.Stdout)
		}
	}
	for _, l := range strings.Split(r.Stdout, "\n") {
		if len([]rune(l)) > 80 {
			t.Errorf("over 80 columns: %q", l)
		}
	}
	r = cmdtest.Run(t, "--json", "queue", "list", "--domain", "yahoo.example")
	var envs []queue.Envelope
	if err := json.Unmarshal(r.Envelope(t).Result, &envs); err != nil || len(envs) != 1 || envs[0].ID != a {
		t.Errorf("filtered list %v %v", envs, err)
	}
	if r := cmdtest.Run(t, "queue", "show", b); r.Code != 0 || !strings.Contains(r.Stdout, "Subject: hi") {
		t.Errorf("show: %d\n%s", r.Code, r.Stdout)
	}
	if r := cmdtest.Run(t, "--json", "queue", "show", "NOSUCHID"); r.Code != 1 || !r.Envelope(t).Has("queue.not-found") {
		t.Errorf("show missing: %d %s", r.Code, r.Stdout)
	}
	if r := cmdtest.Run(t, "queue", "retry", "--domain", "gmail.example"); r.Code != 0 || !strings.Contains(r.Stdout, "2 message(s), 2 recipient(s) due now") {
		t.Errorf("retry --domain: %d %s", r.Code, r.Stdout)
	}
	if r := cmdtest.Run(t, "queue", "hold", a); r.Code != 0 {
		t.Errorf("hold: %d %s", r.Code, r.Stderr)
	}
	if env, _ := q.Get(a); env.Recipients[0].State != queue.StateHeld {
		t.Errorf("not held: %+v", env.Recipients)
	}
	if r := cmdtest.Run(t, "queue", "list", "--state", "held"); !strings.Contains(r.Stdout, "held      x@yahoo.example") {
		t.Errorf("list held:\n%s", r.Stdout)
	}
	if r := cmdtest.Run(t, "queue", "release", a); r.Code != 0 {
		t.Errorf("release: %d", r.Code)
	}
	if r := cmdtest.Run(t, "queue", "delete", "--bounce", b); r.Code != 1 || !strings.Contains(r.Stdout, "cannot send bounces") {
		t.Errorf("delete --bounce without a bouncer: %d %s", r.Code, r.Stdout)
	}
	if r := cmdtest.Run(t, "queue", "delete", b); r.Code != 0 {
		t.Errorf("delete: %d %s", r.Code, r.Stderr)
	}
	if _, err := q.Get(b); err == nil {
		t.Error("still queued after delete")
	}
	for _, args := range [][]string{{"queue", "retry"}, {"queue", "retry", "--all", a}, {"queue", "delete", "--reason", "x", a}, {"queue", "list", "--state", "bogus"}} {
		if r := cmdtest.Run(t, args...); r.Code != 2 {
			t.Errorf("%v: exit %d", args, r.Code)
		}
	}
}

func TestQueueRelayDown(t *testing.T) {
	t.Setenv("RELAYCTL_SERVE_SPOOL", t.TempDir())
	r := cmdtest.Run(t, "--json", "queue", "list")
	if r.Code != 3 || !r.Envelope(t).Has("relayctl.incomplete") || !strings.Contains(r.Stderr, "is `relayctl serve` running") {
		t.Errorf("exit %d %s %s", r.Code, r.Stdout, r.Stderr)
	}
}
