// Package cmdtest runs relayctl commands in-process for tests, through the
// same cmd.Main the binary uses, with buffers for stdin, stdout and stderr.
package cmdtest

import (
	"bytes"
	"encoding/json"
	"io"
	"testing"

	"github.com/relayctl/relayctl/cmd"
	"github.com/relayctl/relayctl/cmd/cmdutil"
	"github.com/relayctl/relayctl/pkg/report"
)

// Result is what a command printed and its exit code.
type Result struct {
	Stdout, Stderr string
	Code           int
}

// Run runs `relayctl args…` with empty stdin. The user's config file is
// never read: XDG_CONFIG_HOME points at an empty temporary directory.
func Run(t testing.TB, args ...string) Result {
	t.Helper()
	return RunStdin(t, nil, args...)
}

// RunStdin runs `relayctl args…` with stdin.
func RunStdin(t testing.TB, stdin io.Reader, args ...string) Result {
	t.Helper()
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	f, in, out, errOut := cmdutil.NewTestFactory()
	if stdin != nil {
		if _, err := io.Copy(in, stdin); err != nil {
			t.Fatal(err)
		}
	}
	code := cmd.Main(f, args)
	return Result{Stdout: out.String(), Stderr: errOut.String(), Code: code}
}

// Envelope decodes --json output; it fails the test if stdout is not one
// JSON object in the report envelope.
func (r Result) Envelope(t testing.TB) Envelope {
	t.Helper()
	var e Envelope
	dec := json.NewDecoder(bytes.NewBufferString(r.Stdout))
	if err := dec.Decode(&e); err != nil {
		t.Fatalf("stdout is not a JSON envelope: %v\n%s\nstderr: %s", err, r.Stdout, r.Stderr)
	}
	if dec.More() {
		t.Fatalf("stdout holds more than one JSON value:\n%s", r.Stdout)
	}
	return e
}

// Envelope is the decoded --json output with the result left raw.
type Envelope struct {
	Command  string           `json:"command"`
	Target   string           `json:"target"`
	Status   report.Status    `json:"status"`
	Findings []report.Finding `json:"findings"`
	Result   json.RawMessage  `json:"result"`
}

// Has reports whether a finding with code is present.
func (e Envelope) Has(code string) bool {
	for _, f := range e.Findings {
		if f.Code == code {
			return true
		}
	}
	return false
}
