package cmd_test

import (
	"strings"
	"testing"

	"github.com/relayctl/relayctl/cmd/cmdtest"
)

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"--bogus"},
		{"check", "bogus"},
		{"nosuchcommand"},
		{"--timeout", "fast", "check"},
	} {
		r := cmdtest.Run(t, args...)
		if r.Code != 2 {
			t.Errorf("%v: exit %d, want 2 (stderr %q)", args, r.Code, r.Stderr)
		}
		if lines := strings.Count(strings.TrimSpace(r.Stderr), "\n"); lines != 0 || !strings.HasPrefix(r.Stderr, "relayctl: ") {
			t.Errorf("%v: want a one-line error, got %q", args, r.Stderr)
		}
	}
}

func TestUsageErrorJSON(t *testing.T) {
	r := cmdtest.Run(t, "--json", "check", "bogus")
	if r.Code != 2 {
		t.Fatalf("exit %d", r.Code)
	}
	e := r.Envelope(t)
	if e.Status != "error" || !e.Has("relayctl.usage") {
		t.Errorf("envelope %+v", e)
	}
}

func TestConfigFileMissing(t *testing.T) {
	r := cmdtest.Run(t, "--config", "/nonexistent/relayctl.yaml", "check")
	if r.Code != 2 || !strings.Contains(r.Stderr, "config file") {
		t.Errorf("exit %d, stderr %q", r.Code, r.Stderr)
	}
}

func TestVersion(t *testing.T) {
	r := cmdtest.Run(t, "--version")
	if r.Code != 0 || !strings.HasPrefix(r.Stdout, "relayctl ") {
		t.Errorf("exit %d, stdout %q", r.Code, r.Stdout)
	}
}
