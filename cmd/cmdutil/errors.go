package cmdutil

import (
	"errors"
	"fmt"

	"github.com/relayctl/relayctl/pkg/dnsclient"
	"github.com/relayctl/relayctl/pkg/report"
)

// UsageError is bad usage or invalid input: exit code 2.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// Usagef returns a *UsageError.
func Usagef(format string, args ...any) error {
	return &UsageError{Err: fmt.Errorf(format, args...)}
}

// IncompleteError means the command could not complete (DNS, network):
// exit code 3.
type IncompleteError struct{ Err error }

func (e *IncompleteError) Error() string { return e.Err.Error() }
func (e *IncompleteError) Unwrap() error { return e.Err }

// ExitError carries an exit code after the command already printed its
// output; Main prints nothing more for it.
type ExitError struct{ Code int }

func (e *ExitError) Error() string { return fmt.Sprintf("exit status %d", e.Code) }

// ExitCode maps an error returned by a command to the documented exit
// code: 0 nil, 2 usage, 3 could not complete (including every DNS query
// error), the carried code for *ExitError, 1 otherwise.
func ExitCode(err error) int {
	var (
		ee *ExitError
		ue *UsageError
		ie *IncompleteError
		qe *dnsclient.QueryError
	)
	switch {
	case err == nil:
		return report.ExitOK
	case errors.As(err, &ee):
		return ee.Code
	case errors.As(err, &ue):
		return report.ExitUsage
	case errors.As(err, &ie), errors.As(err, &qe):
		return report.ExitIncomplete
	}
	return report.ExitFailed
}
