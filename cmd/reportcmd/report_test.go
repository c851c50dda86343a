package reportcmd_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/relayctl/relayctl/cmd/cmdtest"
	"github.com/relayctl/relayctl/pkg/events"
)

func writeLog(t *testing.T, evs []events.Event) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "delivery.log")
	fh, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	w := events.NewWriter(fh)
	for _, e := range evs {
		w.Write(e)
	}
	fh.Close()
	return p
}

func TestReport(t *testing.T) {
	now := time.Now()
	var evs []events.Event
	for i := range 30 {
		evs = append(evs, events.Event{Time: now.Add(-time.Hour), Queued: now.Add(-time.Hour - time.Duration(i)*time.Second),
			QueueID: "q" + string(rune('a'+i)), Recipient: "u@ok.example", Domain: "ok.example", Result: events.Delivered, Code: 250, TLS: true})
	}
	evs = append(evs, events.Event{Time: now.Add(-time.Minute), QueueID: "b1", Recipient: "x@gone.example", Domain: "gone.example", Result: events.Bounced, Code: 550, EnhancedCode: "5.1.1", Response: "550 5.1.1 no such user"})
	p := writeLog(t, evs)
	r := cmdtest.Run(t, "report", "--log", p)
	if r.Code != 0 {
		t.Fatalf("exit %d %s", r.Code, r.Stderr)
	}
	for _, want := range []string{"delivered          30", "bounced            1", "gone.example", "550 5.1.1 no such user (×1)", "report.bounce-rate"} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.Stdout)
		}
	}
	for _, l := range strings.Split(r.Stdout, "\n") {
		if len([]rune(l)) > 80 {
			t.Errorf("line over 80 columns: %q", l)
		}
	}
	if r := cmdtest.Run(t, "--strict", "report", "--log", p); r.Code != 1 {
		t.Errorf("--strict with 3.2%% bounces: exit %d", r.Code)
	}
	evs = append(evs, events.Event{Time: now.Add(-time.Minute), QueueID: "b2", Recipient: "y@gone.example", Domain: "gone.example", Result: events.Bounced, Code: 550, EnhancedCode: "5.1.1", Response: "no such user"})
	p = writeLog(t, evs)
	r = cmdtest.Run(t, "--json", "report", "--log", p)
	if r.Code != 1 {
		t.Fatalf("6%% bounces: exit %d", r.Code)
	}
	e := r.Envelope(t)
	var s struct {
		Bounced    int     `json:"bounced"`
		BounceRate float64 `json:"bounce_rate"`
		Median     string  `json:"median_delivery"`
	}
	json.Unmarshal(e.Result, &s)
	if s.Bounced != 2 || s.BounceRate < 0.06 || s.Median != "14s" || !e.Has("report.bounce-rate") {
		t.Errorf("%+v %s", s, e.Result)
	}
	// window excludes everything
	if r := cmdtest.Run(t, "--json", "report", "--log", p, "--since", "10s"); r.Code != 0 || !r.Envelope(t).Has("report.no-events") {
		t.Errorf("empty window: exit %d %s", r.Code, r.Stdout)
	}
}

func TestReportUsage(t *testing.T) {
	for _, args := range [][]string{{"report"}, {"report", "--log", "/nonexistent"}, {"report", "--log", "x", "--since", "-1h"}} {
		if r := cmdtest.Run(t, args...); r.Code != 2 {
			t.Errorf("%v: exit %d", args, r.Code)
		}
	}
	bad := filepath.Join(t.TempDir(), "bad.log")
	os.WriteFile(bad, []byte("not json\n"), 0o600)
	if r := cmdtest.Run(t, "report", "--log", bad); r.Code != 2 || !strings.Contains(r.Stderr, "line 1") {
		t.Errorf("bad log: exit %d %s", r.Code, r.Stderr)
	}
}
