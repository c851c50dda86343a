package blocklist

import (
	"context"
	"errors"
	"fmt"
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

// A bulk run with a refusing list shows the listed targets and sums the
// refusals up in one finding, instead of one ERROR row per target.
func TestBulkOutputWithErrors(t *testing.T) {
	srv := dnstest.Start(t, "2.0.0.127.zen.spamhaus.org. A 127.0.0.2\n")
	for i := range 64 {
		srv.AddZone(fmt.Sprintf("%d.8.9.10.bl.spamcop.net. A 127.255.255.254\n", i))
	}
	f, _, out, _ := cmdutil.NewTestFactory()
	f.Config.Set(cmdutil.KeyResolver, srv.Addr())
	opts := &Options{Args: []string{"10.9.8.0/26", "127.0.0.2"}, Concurrency: 16, Zones: []string{"zen.spamhaus.org", "bl.spamcop.net"}}
	var ee *cmdutil.ExitError
	if err := run(context.Background(), f, opts); !errors.As(err, &ee) || ee.Code != 1 {
		t.Fatalf("%v", err)
	}
	o := out.String()
	for _, want := range []string{"127.0.0.2\n", "64 targets with errors but no listing not shown (--all shows them)", "64 of 65 queries gave no usable answer"} {
		if !strings.Contains(o, want) {
			t.Errorf("output lacks %q:\n%s", want, o)
		}
	}
	if strings.Count(o, "ERROR") != 0 {
		t.Errorf("per-target error rows in a bulk run:\n%s", o)
	}
}
