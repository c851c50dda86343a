// Package report is relayctl's output contract: the JSON envelope every
// command prints with --json, findings with stable codes, the overall
// status, and the exit code that status maps to.
//
// Envelope:
//
//	{"command": "check spf", "target": "example.com", "status": "pass|warn|fail|error",
//	 "findings": [{"code": "spf.lookup-limit", "severity": "error", "message": "..."}],
//	 "result": {...}}
//
// Exit codes: 0 pass (warnings allowed), 1 a check failed (an error
// finding; with strict, a warning too), 2 bad usage or invalid input,
// 3 could not complete (DNS timeout, SERVFAIL, network).
package report

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Severity of a finding.
type Severity string

// Severities, from worst to mildest.
const (
	SeverityError   Severity = "error"
	SeverityWarning Severity = "warning"
	SeverityInfo    Severity = "info"
)

// Status of a whole report.
type Status string

// Statuses.
const (
	StatusPass  Status = "pass"  // nothing wrong (infos allowed)
	StatusWarn  Status = "warn"  // warnings, no errors
	StatusFail  Status = "fail"  // at least one error finding
	StatusError Status = "error" // the check could not complete
)

// Exit codes, documented in docs/exit-codes.md and the root --help.
const (
	ExitOK         = 0
	ExitFailed     = 1
	ExitUsage      = 2
	ExitIncomplete = 3
)

// Finding is one observation with a stable, greppable code such as
// "spf.lookup-limit".
type Finding struct {
	Code     string   `json:"code"`
	Severity Severity `json:"severity"`
	Message  string   `json:"message"`
}

// Report is the envelope printed by --json.
type Report struct {
	Command  string    `json:"command"`
	Target   string    `json:"target"`
	Status   Status    `json:"status"`
	Findings []Finding `json:"findings"`
	Result   any       `json:"result"`
	// Incomplete is set when the check could not finish (DNS timeout,
	// SERVFAIL, network): the status becomes "error" and the exit code 3
	// unless a failure was found anyway.
	Incomplete bool `json:"-"`
}

// New starts a report.
func New(command, target string) *Report {
	return &Report{Command: command, Target: target, Findings: []Finding{}}
}

// Add appends a finding.
func (r *Report) Add(code string, sev Severity, format string, args ...any) {
	r.Findings = append(r.Findings, Finding{Code: code, Severity: sev, Message: fmt.Sprintf(format, args...)})
}

// Error, Warn and Info add findings of that severity.
func (r *Report) Error(code, format string, args ...any) { r.Add(code, SeverityError, format, args...) }

// Warn adds a warning finding.
func (r *Report) Warn(code, format string, args ...any) {
	r.Add(code, SeverityWarning, format, args...)
}

// Info adds an informational finding.
func (r *Report) Info(code, format string, args ...any) { r.Add(code, SeverityInfo, format, args...) }

// Has reports whether a finding with the code exists.
func (r *Report) Has(code string) bool {
	return slices.ContainsFunc(r.Findings, func(f Finding) bool { return f.Code == code })
}

// Ignore drops findings whose code is in codes (exact match, or a prefix
// ending in "." or "*", e.g. "spf." or "spf.*").
func (r *Report) Ignore(codes []string) {
	if len(codes) == 0 {
		return
	}
	r.Findings = slices.DeleteFunc(r.Findings, func(f Finding) bool { return Matches(f.Code, codes) })
}

// Matches reports whether code is named by one of patterns.
func Matches(code string, patterns []string) bool {
	for _, p := range patterns {
		p = strings.TrimSpace(p)
		switch {
		case p == "":
		case p == code:
			return true
		case strings.HasSuffix(p, "*") && strings.HasPrefix(code, strings.TrimSuffix(p, "*")):
			return true
		case strings.HasSuffix(p, ".") && strings.HasPrefix(code, p):
			return true
		}
	}
	return false
}

// Finish computes Status from the findings and Incomplete, and returns it.
func (r *Report) Finish() Status {
	r.Status = StatusOf(r.Findings, r.Incomplete)
	return r.Status
}

// StatusOf derives a status: fail beats error beats warn beats pass.
func StatusOf(findings []Finding, incomplete bool) Status {
	var errs, warns bool
	for _, f := range findings {
		switch f.Severity {
		case SeverityError:
			errs = true
		case SeverityWarning:
			warns = true
		}
	}
	switch {
	case errs:
		return StatusFail
	case incomplete:
		return StatusError
	case warns:
		return StatusWarn
	}
	return StatusPass
}

// ExitCode maps a status to the documented exit code. With strict, a
// warning fails too.
func ExitCode(s Status, strict bool) int {
	switch s {
	case StatusFail:
		return ExitFailed
	case StatusError:
		return ExitIncomplete
	case StatusWarn:
		if strict {
			return ExitFailed
		}
	}
	return ExitOK
}

// Worst rolls statuses up: fail, then error, then warn, then pass.
func Worst(statuses ...Status) Status {
	rank := map[Status]int{StatusPass: 0, StatusWarn: 1, StatusError: 2, StatusFail: 3}
	w := StatusPass
	for _, s := range statuses {
		if rank[s] > rank[w] {
			w = s
		}
	}
	return w
}

// WriteJSON writes the envelope as one indented JSON object and a newline.
func (r *Report) WriteJSON(w io.Writer) error {
	if r.Status == "" {
		r.Finish()
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(r)
}
