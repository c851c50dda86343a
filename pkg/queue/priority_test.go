package queue

import (
	"strings"
	"testing"
	"time"
)

// Messages ranked above 0 by Options.Priority come out of Due and DueN
// before an older backlog.
func TestPriorityOvertakesBacklog(t *testing.T) {
	q, err := Open(t.TempDir(), Options{Priority: func(env *Envelope) int {
		if env.Stream == "transactional" {
			return 10
		}
		return 0
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	now := time.Now()
	enq := func(stream string, at time.Time) string {
		t.Helper()
		id, err := q.Enqueue(&Envelope{From: "a@example.com", Stream: stream, Recipients: []Recipient{{Address: "b@example.org", State: StateQueued, NextAttempt: at}}}, strings.NewReader("x"))
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	for i := range 50 {
		enq("bulk", now.Add(-time.Hour+time.Duration(i)*time.Second))
	}
	tx := enq("transactional", now)
	later := enq("transactional", now.Add(time.Hour)) // not due: must not be handed out
	if got := q.DueN(now, 5); len(got) != 5 || got[0] != tx {
		t.Fatalf("DueN: %v, want %s first", got, tx)
	}
	if got := q.Due(now); len(got) != 51 || got[0] != tx {
		t.Fatalf("Due: %d ids, first %s", len(got), got[0])
	}
	for _, id := range q.Due(now) {
		if id == later {
			t.Fatal("future urgent message handed out")
		}
	}
	if at, ok := q.NextDue(); !ok || !at.Equal(now.Add(-time.Hour)) {
		t.Errorf("NextDue %v %v", at, ok)
	}
	// demoted: back among the rest by due time
	if err := q.Update(tx, func(e *Envelope) error { e.Stream = "bulk"; return nil }); err != nil {
		t.Fatal(err)
	}
	if got := q.DueN(now, 1); got[0] == tx {
		t.Error("demoted message still first")
	}
	if err := q.Remove(later); err != nil {
		t.Fatal(err)
	}
	if q.Len() != 51 {
		t.Errorf("len %d", q.Len())
	}
}

// DueStreams passes over the streams at their cap without counting them,
// so a capped backlog does not hide another stream's due messages.
func TestDueStreamsSkipsCappedStreams(t *testing.T) {
	q, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	now := time.Now()
	var news string
	for i := range 30 {
		stream := "bulk"
		if i == 25 {
			stream = "newsletter"
		}
		id, err := q.Enqueue(&Envelope{From: "a@example.com", Stream: stream, Recipients: []Recipient{{Address: "b@example.org", State: StateQueued, NextAttempt: now.Add(-time.Hour + time.Duration(i)*time.Second)}}}, strings.NewReader("x"))
		if err != nil {
			t.Fatal(err)
		}
		if stream == "newsletter" {
			news = id
		}
	}
	if got := q.DueStreams(now, 3, nil); len(got) != 3 || got[0].Stream != "bulk" {
		t.Fatalf("no skip: %+v", got)
	}
	got := q.DueStreams(now, 3, map[string]bool{"bulk": true})
	if len(got) != 1 || got[0].ID != news || got[0].Stream != "newsletter" {
		t.Fatalf("bulk skipped: %+v, want only %s", got, news)
	}
	if got := q.DueStreams(now, 3, map[string]bool{"bulk": true, "newsletter": true}); len(got) != 0 {
		t.Errorf("everything skipped: %+v", got)
	}
	// moved to another stream: found under its new one only
	if err := q.Update(news, func(e *Envelope) error { e.Stream = "bulk"; return nil }); err != nil {
		t.Fatal(err)
	}
	if got := q.DueStreams(now, 3, map[string]bool{"bulk": true}); len(got) != 0 {
		t.Errorf("moved message still under its old stream: %+v", got)
	}
	if got := q.DueN(now, 40); len(got) != 30 {
		t.Errorf("DueN after the move: %d ids, want 30", len(got))
	}
	if err := q.Remove(news); err != nil {
		t.Fatal(err)
	}
	if got := q.Due(now); len(got) != 29 {
		t.Errorf("Due after remove: %d ids", len(got))
	}
}
