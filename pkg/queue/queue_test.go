package queue

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func testEnv(rcpts ...string) *Envelope {
	env := &Envelope{From: "app@example.org"}
	for _, r := range rcpts {
		env.Recipients = append(env.Recipients, Recipient{Address: r})
	}
	return env
}

func open(t testing.TB, dir string) *Queue {
	t.Helper()
	q, err := Open(dir, DefaultOptions())
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

func readAll(t testing.TB, q *Queue, id string) string {
	t.Helper()
	rc, err := q.Content(id)
	if err != nil {
		t.Fatalf("Content(%s): %v", id, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestEnqueueGetContent(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool")
	q := open(t, dir)
	env := testEnv("a@example.com", "b@example.net")
	id, err := q.Enqueue(env, strings.NewReader("Subject: hi\r\n\r\nbody\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	if id == "" || env.ID != id || env.Size != 21 || env.Received.IsZero() {
		t.Fatalf("enqueue did not fill the envelope: id=%q %+v", id, env)
	}
	st, err := os.Stat(dir)
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("spool mode = %v, %v; want 0700", st.Mode().Perm(), err)
	}
	got, err := q.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	if got.From != env.From || len(got.Recipients) != 2 || got.Recipients[0].State != StateQueued {
		t.Fatalf("Get = %+v", got)
	}
	got.From = "changed"
	if again, _ := q.Get(id); again.From != env.From {
		t.Fatal("Get did not return a copy")
	}
	if c := readAll(t, q, id); c != "Subject: hi\r\n\r\nbody\r\n" {
		t.Fatalf("content = %q", c)
	}
	if _, err := q.Get("nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get(unknown) = %v", err)
	}
	if _, err := q.Get("../etc/passwd"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get(path) = %v", err)
	}
	if _, err := q.Enqueue(&Envelope{ID: "../x", Recipients: []Recipient{{Address: "a@b"}}}, strings.NewReader("")); err == nil {
		t.Fatal("Enqueue accepted an id that is not a file name")
	}
	if _, err := q.Enqueue(&Envelope{}, strings.NewReader("")); err == nil {
		t.Fatal("Enqueue accepted no recipients")
	}
}

func TestUpdateAndRemove(t *testing.T) {
	q := open(t, t.TempDir())
	id, err := q.Enqueue(testEnv("a@example.com", "b@example.com"), strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Update(id, func(e *Envelope) error {
		e.Recipients[0].State = StateDelivered
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	env, _ := q.Get(id)
	if env.Recipients[0].State != StateDelivered || env.Recipients[1].State != StateQueued {
		t.Fatalf("after update: %+v", env.Recipients)
	}
	// An error from fn writes nothing.
	boom := errors.New("boom")
	if err := q.Update(id, func(e *Envelope) error { e.From = "x"; return boom }); !errors.Is(err, boom) {
		t.Fatalf("Update error = %v", err)
	}
	if env, _ := q.Get(id); env.From != "app@example.org" {
		t.Fatal("failed update was written")
	}
	// The last recipient done → removed, files gone.
	if err := q.Update(id, func(e *Envelope) error {
		e.Recipients[1].State = StateBounced
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Get(id); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after done = %v", err)
	}
	if ents, _ := os.ReadDir(q.Dir()); len(ents) != 0 {
		t.Fatalf("files left: %v", ents)
	}
	if err := q.Update(id, func(*Envelope) error { return nil }); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Update(removed) = %v", err)
	}
	id2, _ := q.Enqueue(testEnv("c@example.com"), strings.NewReader("y"))
	if err := q.Remove(id2); err != nil {
		t.Fatal(err)
	}
	if err := q.Remove(id2); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second Remove = %v", err)
	}
	if q.Len() != 0 {
		t.Fatalf("Len = %d", q.Len())
	}
}

func TestDueAndWake(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	q, err := Open(t.TempDir(), Options{Fsync: true, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	// Drain any pending wake.
	select {
	case <-q.Wake():
	default:
	}
	a, _ := q.Enqueue(testEnv("a@x"), strings.NewReader("a"))
	select {
	case <-q.Wake():
	default:
		t.Fatal("no wake after Enqueue")
	}
	b, _ := q.Enqueue(testEnv("b@x"), strings.NewReader("b"))
	held := testEnv("h@x")
	held.Recipients[0].State = StateHeld
	h, _ := q.Enqueue(held, strings.NewReader("h"))

	if got := q.Due(now); len(got) != 2 {
		t.Fatalf("Due = %v, want %s %s", got, a, b)
	}
	// Defer a for 10 minutes.
	q.Update(a, func(e *Envelope) error {
		e.Recipients[0].State = StateDeferred
		e.Recipients[0].NextAttempt = now.Add(10 * time.Minute)
		return nil
	})
	if got := q.Due(now); len(got) != 1 || got[0] != b {
		t.Fatalf("Due = %v, want [%s]", got, b)
	}
	if got := q.Due(now.Add(10 * time.Minute)); len(got) != 2 || got[1] != a {
		t.Fatalf("Due later = %v", got)
	}
	q.Remove(b)
	next, ok := q.NextDue()
	if !ok || !next.Equal(now.Add(10*time.Minute)) {
		t.Fatalf("NextDue = %v %v", next, ok)
	}
	// Releasing the held one makes it due.
	select {
	case <-q.Wake():
	default:
	}
	q.Update(h, func(e *Envelope) error { e.Recipients[0].State = StateQueued; return nil })
	select {
	case <-q.Wake():
	default:
		t.Fatal("no wake after release")
	}
	if got := q.Due(now); len(got) != 1 || got[0] != h {
		t.Fatalf("Due = %v, want [%s]", got, h)
	}
}

func TestRecovery(t *testing.T) {
	dir := t.TempDir()
	q := open(t, dir)
	var ids []string
	for i := 0; i < 5; i++ {
		id, err := q.Enqueue(testEnv(fmt.Sprintf("r%d@example.com", i)), strings.NewReader(fmt.Sprint("msg ", i)))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	q.Update(ids[1], func(e *Envelope) error {
		e.Recipients[0].State = StateDeferred
		e.Recipients[0].NextAttempt = time.Now().Add(time.Hour)
		e.Recipients[0].LastResponse = "451 4.7.1 greylisted"
		return nil
	})
	q.Close()
	// What a crash leaves: a half-written temp file, a content file whose
	// envelope was never written, an envelope that is not JSON.
	os.WriteFile(filepath.Join(dir, ".tmp-123"), []byte("half"), 0o600)
	os.WriteFile(filepath.Join(dir, "ORPHAN.msg"), []byte("never acked"), 0o600)
	os.WriteFile(filepath.Join(dir, "BROKEN.env"), []byte("{not json"), 0o600)
	os.WriteFile(filepath.Join(dir, "BROKEN.msg"), []byte("x"), 0o600)

	q2 := open(t, dir)
	if q2.Len() != 5 {
		t.Fatalf("recovered %d messages, want 5", q2.Len())
	}
	for i, id := range ids {
		if c := readAll(t, q2, id); c != fmt.Sprint("msg ", i) {
			t.Fatalf("%s content = %q", id, c)
		}
	}
	env, _ := q2.Get(ids[1])
	if env.Recipients[0].LastResponse != "451 4.7.1 greylisted" {
		t.Fatalf("state lost: %+v", env.Recipients[0])
	}
	if len(q2.Due(time.Now())) != 4 {
		t.Fatalf("Due after recovery = %v", q2.Due(time.Now()))
	}
	for _, gone := range []string{".tmp-123", "ORPHAN.msg", "BROKEN.env"} {
		if _, err := os.Stat(filepath.Join(dir, gone)); !os.IsNotExist(err) {
			t.Errorf("%s still there after recovery", gone)
		}
	}
	if c := q2.Corrupt(); len(c) != 1 || !strings.HasPrefix(c[0], "BROKEN.env") {
		t.Fatalf("Corrupt = %v", c)
	}
	if _, err := os.Stat(filepath.Join(dir, "BROKEN.env.corrupt")); err != nil {
		t.Fatal("corrupt envelope not set aside")
	}
}

// A reader that fails half-way (the client vanished during DATA) leaves
// nothing behind and is not a storage error.
func TestEnqueueReadError(t *testing.T) {
	q := open(t, t.TempDir())
	r := io.MultiReader(strings.NewReader("partial"), iotestErr{})
	_, err := q.Enqueue(testEnv("a@x"), r)
	if err == nil || errors.Is(err, ErrStorage) {
		t.Fatalf("err = %v", err)
	}
	if ents, _ := os.ReadDir(q.Dir()); len(ents) != 0 {
		t.Fatalf("files left: %v", ents)
	}
}

type iotestErr struct{}

func (iotestErr) Read([]byte) (int, error) { return 0, errors.New("connection reset") }

const childEnv = "RELAYCTL_QUEUE_TEST_CHILD"

// TestKill9 runs a child process (this test binary) that enqueues as fast
// as it can and prints each id once Enqueue returned; it is killed with
// SIGKILL mid-stream. Every printed id must be there after Open, with its
// content intact.
func TestKill9(t *testing.T) {
	if os.Getenv(childEnv) == "kill9" {
		kill9Child()
		return
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKill9$")
	cmd.Env = append(os.Environ(), childEnv+"=kill9", "RELAYCTL_QUEUE_DIR="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := map[string]string{}
	sc := bufio.NewScanner(out)
	deadline := time.AfterFunc(20*time.Second, func() { cmd.Process.Kill() })
	defer deadline.Stop()
	for sc.Scan() {
		id, body, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		acked[id] = body
		if len(acked) == 200 {
			cmd.Process.Kill() // SIGKILL
			break
		}
	}
	cmd.Wait()
	if len(acked) < 200 {
		t.Fatalf("child acknowledged only %d messages", len(acked))
	}
	q := open(t, dir)
	for id, body := range acked {
		if c := readAll(t, q, id); c != body {
			t.Fatalf("%s: content %q, want %q", id, c, body)
		}
	}
	for _, e := range mustList(t, q) {
		if e.Size == 0 || len(e.Recipients) != 1 {
			t.Fatalf("recovered a broken envelope: %+v", e)
		}
	}
	t.Logf("%d acknowledged before SIGKILL, %d recovered", len(acked), q.Len())
}

func mustList(t *testing.T, q *Queue) []*Envelope {
	t.Helper()
	l, err := q.List()
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func kill9Child() {
	q, err := Open(os.Getenv("RELAYCTL_QUEUE_DIR"), DefaultOptions())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	w := bufio.NewWriter(os.Stdout)
	for i := 0; ; i++ {
		body := fmt.Sprintf("message-%d-%s", i, strings.Repeat("x", i%500))
		id, err := q.Enqueue(testEnv("r@example.com"), strings.NewReader(body))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Fprintf(w, "%s %s\n", id, body)
		w.Flush()
	}
}

// TestDiskFull fills a small tmpfs (in a user+mount namespace, so no root
// is needed) and checks that the failing Enqueue says ErrStorage, leaves
// nothing half-written, and that what was queued before is intact.
func TestDiskFull(t *testing.T) {
	if os.Getenv(childEnv) == "full" {
		diskFullChild(t)
		return
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skip("unshare (util-linux) not installed: cannot make a small filesystem")
	}
	dir := t.TempDir()
	cmd := exec.Command(unshare, "-rm", "sh", "-c",
		`mount -t tmpfs -o size=128k tmpfs "$1" || exit 42; exec "$2" -test.run='^TestDiskFull$' -test.v`, "sh", dir, os.Args[0])
	cmd.Env = append(os.Environ(), childEnv+"=full", "RELAYCTL_QUEUE_DIR="+dir)
	out, err := cmd.CombinedOutput()
	if cmd.ProcessState != nil && cmd.ProcessState.ExitCode() == 42 || bytes.Contains(out, []byte("unshare: ")) {
		t.Skipf("cannot mount a tmpfs in a user namespace here: %s", bytes.TrimSpace(out))
	}
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	t.Logf("child:\n%s", out)
	if !bytes.Contains(out, []byte("FULL-OK")) {
		t.Fatalf("child did not finish:\n%s", out)
	}
}

func diskFullChild(t *testing.T) {
	dir := os.Getenv("RELAYCTL_QUEUE_DIR")
	q, err := Open(filepath.Join(dir, "spool"), DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	body := strings.Repeat("0123456789abcdef", 512) // 8 KiB
	var ids []string
	var ferr error
	for i := 0; i < 100; i++ {
		id, err := q.Enqueue(testEnv("r@example.com"), strings.NewReader(body))
		if err != nil {
			ferr = err
			break
		}
		ids = append(ids, id)
	}
	if ferr == nil || !errors.Is(ferr, ErrStorage) {
		t.Fatalf("filling the disk: err = %v after %d messages", ferr, len(ids))
	}
	t.Logf("disk full after %d messages: %v", len(ids), ferr)
	ents, _ := os.ReadDir(q.Dir())
	if len(ents) != 2*len(ids) {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Fatalf("%d files for %d messages: %v", len(ents), len(ids), names)
	}
	// An Update that cannot be written keeps the old envelope.
	big := strings.Repeat("y", 200<<10)
	err = q.Update(ids[0], func(e *Envelope) error { e.Recipients[0].LastResponse = big; return nil })
	if !errors.Is(err, ErrStorage) {
		t.Fatalf("Update on a full disk = %v", err)
	}
	q.Close()
	q2, err := Open(filepath.Join(dir, "spool"), DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	if q2.Len() != len(ids) {
		t.Fatalf("recovered %d, want %d", q2.Len(), len(ids))
	}
	for _, id := range ids {
		if c := readAll(t, q2, id); c != body {
			t.Fatalf("%s damaged", id)
		}
	}
	fmt.Println("FULL-OK")
}

func TestDueManyFast(t *testing.T) {
	q, err := Open(t.TempDir(), Options{Fsync: false})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	now := time.Now()
	for i := 0; i < 500; i++ {
		env := testEnv("r@x")
		env.Recipients[0].State = StateDeferred
		env.Recipients[0].NextAttempt = now.Add(time.Duration(i-10) * time.Minute)
		if _, err := q.Enqueue(env, strings.NewReader("x")); err != nil {
			t.Fatal(err)
		}
	}
	due := q.Due(now)
	if len(due) != 11 {
		t.Fatalf("Due = %d ids, want 11", len(due))
	}
	for _, n := range []int{0, 1, 5, 11, 50} {
		got := q.DueN(now, n)
		if len(got) != min(n, 11) {
			t.Fatalf("DueN(%d) = %d ids", n, len(got))
		}
		for i := range got {
			if got[i] != due[i] {
				t.Fatalf("DueN(%d)[%d] = %s, want %s (earliest first)", n, i, got[i], due[i])
			}
		}
	}
}
