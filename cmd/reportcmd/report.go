// Package reportcmd holds `relayctl report`: the operator's summary of
// the delivery log.
package reportcmd

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/relayctl/relayctl/cmd/cmdutil"
	"github.com/relayctl/relayctl/pkg/report"
	"github.com/relayctl/relayctl/pkg/summary"
)

// KeyLog is the relay's delivery log (the `serve.delivery.log` key).
const KeyLog = "serve.delivery.log"

// Bounce-rate thresholds: mailbox providers start filtering senders
// whose bounce rate stays above a few percent.
const (
	WarnBounceRate  = 0.02
	ErrorBounceRate = 0.05
)

// Options of `relayctl report`.
type Options struct {
	F     *cmdutil.Factory
	Log   string
	Since time.Duration
	Top   int
}

// NewCmdReport is `relayctl report`.
func NewCmdReport(f *cmdutil.Factory, runF func(*Options) error) *cobra.Command {
	o := &Options{F: f}
	cmd := &cobra.Command{
		Use:   "report",
		Short: "Summarise the delivery log: outcomes, bounce rate, slow domains",
		Long: `Read the relay's delivery log (serve.delivery.log, or --log) and print the
operator's summary for a window: recipients delivered, still deferred and
bounced, the bounce rate, the deferral rate, TLS use, the destination domains
that fail most with their most common reply, and the median and 99th
percentile time from acceptance to delivery.

Exit 1 when the bounce rate is 5% or more (warning from 2%; with --strict the
warning fails too), so it can run from cron or monitoring.`,
		Example: `  relayctl report
  relayctl report --since 168h --top 10
  relayctl report --log /var/log/relayctl/delivery.log --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(o)
			}
			return run(o)
		},
	}
	cmd.Flags().StringVar(&o.Log, "log", "", "delivery log file (default: serve.delivery.log)")
	cmd.Flags().DurationVar(&o.Since, "since", 24*time.Hour, "window: events newer than this (0 for the whole log)")
	cmd.Flags().IntVar(&o.Top, "top", 5, "how many failing domains to list")
	return cmd
}

func run(o *Options) error {
	f := o.F
	path := o.Log
	if path == "" {
		path = f.Config.GetString(KeyLog)
	}
	if path == "" {
		return cmdutil.Usagef("no delivery log: give --log FILE or set serve.delivery.log")
	}
	if o.Since < 0 || o.Top < 0 {
		return cmdutil.Usagef("--since and --top must not be negative")
	}
	fh, err := os.Open(path)
	if err != nil {
		return cmdutil.Usagef("delivery log: %v", err)
	}
	defer fh.Close()
	now := f.Now()
	var since time.Time
	if o.Since > 0 {
		since = now.Add(-o.Since)
	}
	s, err := summary.Summarize(fh, since, time.Time{}, o.Top)
	if err != nil {
		return cmdutil.Usagef("delivery log %s: %v", path, err)
	}
	rep := report.New("report", path)
	rep.Result = s
	switch {
	case s.Recipients == 0:
		rep.Info("report.no-events", "no delivery attempts in the window")
	case s.BounceRate >= ErrorBounceRate:
		rep.Error("report.bounce-rate", "bounce rate %.1f%% (%d of %d finished recipients) is at or above %.0f%%: clean the list before sending more", 100*s.BounceRate, s.Bounced, s.Delivered+s.Bounced, 100*ErrorBounceRate)
	case s.BounceRate >= WarnBounceRate:
		rep.Warn("report.bounce-rate", "bounce rate %.1f%% (%d of %d finished recipients) is at or above %.0f%%", 100*s.BounceRate, s.Bounced, s.Delivered+s.Bounced, 100*WarnBounceRate)
	}
	if s.Deferred > 0 {
		rep.Info("report.deferred", "%d recipient(s) still deferred", s.Deferred)
	}
	return f.Output(rep, func(w io.Writer, st *cmdutil.Styles) error {
		writeHuman(w, st, s, o.Since)
		if len(rep.Findings) > 0 {
			fmt.Fprintln(w)
			st.WriteFindings(w, rep.Findings)
		}
		return nil
	})
}

func pct(x float64) string { return fmt.Sprintf("%.1f%%", 100*x) }

func writeHuman(w io.Writer, st *cmdutil.Styles, s *summary.Summary, window time.Duration) {
	title := "Delivery report, whole log"
	if window > 0 {
		title = fmt.Sprintf("Delivery report, last %s (since %s)", window, s.Since.UTC().Format("2006-01-02 15:04 UTC"))
	}
	fmt.Fprintln(w, st.Heading.Render(title))
	row := func(label, value, note string) {
		if note != "" {
			note = "  " + st.Dim.Render(note)
		}
		fmt.Fprintf(w, "  %-18s %s%s\n", label, value, note)
	}
	row("recipients", fmt.Sprint(s.Recipients), "")
	row("delivered", st.Pass.Render(fmt.Sprint(s.Delivered)), "")
	row("deferred", st.Warn.Render(fmt.Sprint(s.Deferred)), "still queued")
	note := ""
	if s.Expired > 0 {
		note = fmt.Sprintf("%d expired", s.Expired)
	}
	row("bounced", st.Fail.Render(fmt.Sprint(s.Bounced)), note)
	if s.Rejected > 0 {
		row("refused", fmt.Sprint(s.Rejected), "at RCPT TO by the relay, not sent")
	}
	if s.Suppressed > 0 {
		row("dropped", fmt.Sprint(s.Suppressed), "on the suppression list (action drop), not sent")
	}
	row("bounce rate", pct(s.BounceRate), "of delivered + bounced")
	row("deferral rate", pct(s.DeferralRate), fmt.Sprintf("of %d attempts", s.Attempts))
	row("TLS", pct(s.TLSRate), "of attempts answered by a server")
	if s.Delivered > 0 {
		row("time to delivery", fmt.Sprintf("median %s, p99 %s", time.Duration(s.MedianDelivery).Round(time.Second), time.Duration(s.P99Delivery).Round(time.Second)), "")
	}
	if len(s.TopFailing) == 0 {
		return
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, st.Heading.Render("Top failing domains"))
	for _, d := range s.TopFailing {
		fmt.Fprintf(w, "  %s  %s\n", st.Bold.Render(d.Domain), fmt.Sprintf("%d bounced, %d deferred, %d delivered", d.Bounced, d.Deferred, d.Delivered))
		resp := fmt.Sprintf("%s (×%d)", d.TopResponse, d.TopResponseCount)
		for _, l := range cmdutil.Wrap(resp, cmdutil.Width-6) {
			fmt.Fprintf(w, "      %s\n", st.Dim.Render(strings.TrimSpace(l)))
		}
	}
}
