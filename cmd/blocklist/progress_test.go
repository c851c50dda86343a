package blocklist

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/relayctl/relayctl/cmd/cmdutil"
	"github.com/relayctl/relayctl/pkg/dnstest"
)

// The progress bar goes to stderr only when stderr is a terminal, never
// with --json, and is erased when the run ends.
func TestProgressOnlyOnTerminal(t *testing.T) {
	srv := dnstest.Start(t, "2.0.0.127.zen.spamhaus.org. A 127.0.0.2\n")
	for _, tc := range []struct {
		tty, json, want bool
	}{{true, false, true}, {false, false, false}, {true, true, false}} {
		f, _, out, errOut := cmdutil.NewTestFactory()
		f.IO.StderrTTY = tc.tty
		f.Config.Set(cmdutil.KeyResolver, srv.Addr())
		f.Config.Set(cmdutil.KeyJSON, tc.json)
		opts := &Options{Args: []string{"10.9.8.0/25"}, Concurrency: 16}
		err := run(context.Background(), f, opts)
		var ee *cmdutil.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatal(err)
		}
		got := strings.Contains(errOut.String(), "/384 queries")
		if got != tc.want {
			t.Errorf("tty=%v json=%v: progress %v, stderr %q", tc.tty, tc.json, got, errOut.String())
		}
		if tc.want && !strings.HasSuffix(errOut.String(), "\r\033[K") {
			t.Errorf("progress bar not erased: %q", errOut.String())
		}
		if strings.Contains(out.String(), "queries]") {
			t.Error("progress on stdout")
		}
		// 384 clean results: a bulk run shows only a count of the clean targets.
		if !tc.json && !strings.Contains(out.String(), "128 targets clean on every list not shown") {
			t.Errorf("bulk output:\n%s", out.String())
		}
	}
}
