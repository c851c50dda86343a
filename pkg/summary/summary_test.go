package summary

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/relayctl/relayctl/pkg/events"
)

var t0 = time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)

func log(t *testing.T, evs ...events.Event) *bytes.Buffer {
	t.Helper()
	var b bytes.Buffer
	w := events.NewWriter(&b)
	for _, e := range evs {
		if err := w.Write(e); err != nil {
			t.Fatal(err)
		}
	}
	return &b
}

func ev(id, rcpt string, res events.Result, at, queued time.Duration, code int, enh, resp string) events.Event {
	return events.Event{Time: t0.Add(at), Queued: t0.Add(queued), QueueID: id, Recipient: rcpt,
		Domain: rcpt[strings.IndexByte(rcpt, '@')+1:], Result: res, Code: code, EnhancedCode: enh, Response: resp, TLS: code != 0}
}

func TestSummarize(t *testing.T) {
	b := log(t,
		ev("old", "x@old.example", events.Bounced, -48*time.Hour, -48*time.Hour, 550, "5.1.1", "gone"), // outside the window
		ev("q1", "a@gmail.example", events.Delivered, 2*time.Second, 0, 250, "2.0.0", "ok"),
		ev("q2", "b@yahoo.example", events.Deferred, time.Minute, 0, 421, "4.7.0", "[TS01] try later"),
		ev("q2", "b@yahoo.example", events.Deferred, 6*time.Minute, 0, 421, "4.7.0", "[TS01]   try later"),
		ev("q2", "b@yahoo.example", events.Delivered, 20*time.Minute, 0, 250, "2.0.0", "ok"),
		ev("q3", "c@yahoo.example", events.Deferred, time.Minute, 0, 421, "4.7.0", "[TS01] try later"),
		ev("q4", "d@gone.example", events.Bounced, time.Minute, 0, 550, "5.1.1", "no such user"),
		ev("q5", "e@gone.example", events.Bounced, time.Minute, 0, 550, "5.1.1", "no such user"),
		ev("q6", "f@dead.example", events.Expired, time.Hour, 0, 0, "", "dial tcp: connection refused"),
		ev("q7", "g@gmail.example", events.Delivered, 4*time.Second, 0, 250, "2.0.0", "ok"),
		events.Event{Time: t0, Recipient: "s@gone.example", Domain: "gone.example", Result: events.Bounced, Code: 550, Response: "suppressed"},
	)
	s, err := Summarize(b, t0.Add(-24*time.Hour), time.Time{}, 2)
	if err != nil {
		t.Fatal(err)
	}
	if s.Recipients != 7 || s.Delivered != 3 || s.Deferred != 1 || s.Bounced != 3 || s.Expired != 1 {
		t.Errorf("counts %+v", s)
	}
	if s.Rejected != 1 {
		t.Errorf("rejected %d", s.Rejected)
	}
	if s.BounceRate != 0.5 || s.Attempts != 9 || s.DeferredAttempts != 3 {
		t.Errorf("rates %+v", s)
	}
	if s.TLSRate != 1 {
		t.Errorf("tls rate %v", s.TLSRate)
	}
	if time.Duration(s.MedianDelivery) != 4*time.Second || time.Duration(s.P99Delivery) != 20*time.Minute {
		t.Errorf("latency %v %v", time.Duration(s.MedianDelivery), time.Duration(s.P99Delivery))
	}
	if len(s.TopFailing) != 2 || s.TopFailing[0].Domain != "gone.example" || s.TopFailing[1].Domain != "yahoo.example" {
		t.Fatalf("top failing %+v", s.TopFailing)
	}
	if s.TopFailing[0].TopResponse != "550 5.1.1 no such user" || s.TopFailing[1].TopResponse != "421 4.7.0 [TS01] try later" || s.TopFailing[1].TopResponseCount != 3 {
		t.Errorf("top responses %+v", s.TopFailing)
	}
}

func TestSummarizeEmptyAndBad(t *testing.T) {
	s, err := Summarize(strings.NewReader(""), time.Time{}, time.Time{}, 5)
	if err != nil || s.Recipients != 0 || s.BounceRate != 0 || s.TopFailing == nil {
		t.Errorf("%+v %v", s, err)
	}
	if _, err := Summarize(strings.NewReader("{\"time\":\n"), time.Time{}, time.Time{}, 5); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("bad line: %v", err)
	}
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i)*time.Second)
	}
	if Percentile(d, 50) != 50*time.Second || Percentile(d, 99) != 99*time.Second || Percentile(d[:1], 99) != time.Second || Percentile(nil, 50) != 0 {
		t.Error("percentile")
	}
}

func FuzzSummarize(f *testing.F) {
	f.Add([]byte(`{"time":"2026-11-29T10:00:00Z","queue_id":"a","recipient":"x@y","domain":"y","result":"delivered","queued":"2026-11-29T09:00:00Z"}` + "\n"))
	f.Add([]byte("{}\n\n{\"result\":\"bounced\"}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Summarize(bytes.NewReader(data), time.Time{}, time.Time{}, 3)
		if err != nil {
			return
		}
		if s.Delivered+s.Deferred+s.Bounced > s.Recipients || s.BounceRate < 0 || s.BounceRate > 1 || len(s.TopFailing) > 3 {
			t.Fatalf("inconsistent %+v", s)
		}
	})
}
