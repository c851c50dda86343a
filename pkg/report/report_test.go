package report_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/relayctl/relayctl/pkg/report"
)

func TestStatusAndExitCode(t *testing.T) {
	cases := []struct {
		name       string
		sevs       []report.Severity
		incomplete bool
		status     report.Status
		exit       int
		strictExit int
	}{
		{"empty", nil, false, report.StatusPass, 0, 0},
		{"info", []report.Severity{report.SeverityInfo}, false, report.StatusPass, 0, 0},
		{"warning", []report.Severity{report.SeverityWarning}, false, report.StatusWarn, 0, 1},
		{"error", []report.Severity{report.SeverityWarning, report.SeverityError}, false, report.StatusFail, 1, 1},
		{"incomplete", []report.Severity{report.SeverityWarning}, true, report.StatusError, 3, 3},
		{"error beats incomplete", []report.Severity{report.SeverityError}, true, report.StatusFail, 1, 1},
	}
	for _, tc := range cases {
		r := report.New("check x", "example.test")
		for _, s := range tc.sevs {
			r.Add("x.code", s, "m")
		}
		r.Incomplete = tc.incomplete
		if got := r.Finish(); got != tc.status {
			t.Errorf("%s: status %s, want %s", tc.name, got, tc.status)
		}
		if got := report.ExitCode(r.Status, false); got != tc.exit {
			t.Errorf("%s: exit %d, want %d", tc.name, got, tc.exit)
		}
		if got := report.ExitCode(r.Status, true); got != tc.strictExit {
			t.Errorf("%s: strict exit %d, want %d", tc.name, got, tc.strictExit)
		}
	}
}

func TestIgnoreAndWorst(t *testing.T) {
	r := report.New("check all", "example.test")
	r.Error("spf.lookup-limit", "too many")
	r.Warn("dmarc.policy-none", "p=none")
	r.Info("mx.ok", "fine")
	r.Ignore([]string{"spf.lookup-limit", "mx.*"})
	if len(r.Findings) != 1 || r.Findings[0].Code != "dmarc.policy-none" {
		t.Fatalf("findings after ignore: %+v", r.Findings)
	}
	if w := report.Worst(report.StatusPass, report.StatusError, report.StatusWarn); w != report.StatusError {
		t.Errorf("worst = %s", w)
	}
	if w := report.Worst(report.StatusError, report.StatusFail); w != report.StatusFail {
		t.Errorf("worst = %s", w)
	}
}

func TestJSONEnvelope(t *testing.T) {
	r := report.New("check spf", "example.test")
	r.Result = map[string]int{"lookups": 3}
	var buf bytes.Buffer
	if err := r.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"command", "target", "status", "findings", "result"} {
		if _, ok := got[k]; !ok {
			t.Errorf("envelope lacks %q: %s", k, buf.String())
		}
	}
	if got["status"] != "pass" {
		t.Errorf("status %v", got["status"])
	}
	if f, ok := got["findings"].([]any); !ok || len(f) != 0 {
		t.Errorf("findings must be an empty array, got %v", got["findings"])
	}
}
