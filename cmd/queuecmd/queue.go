// Package queuecmd holds `relayctl queue …`: seeing and steering the
// running relay's queue through its admin socket.
package queuecmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/relayctl/relayctl/cmd/cmdutil"
	"github.com/relayctl/relayctl/pkg/admin"
	"github.com/relayctl/relayctl/pkg/queue"
	"github.com/relayctl/relayctl/pkg/report"
	"github.com/relayctl/relayctl/pkg/throttle"
)

// KeySocket is the admin socket (`serve.admin.socket`).
const KeySocket = "serve.admin.socket"

// Socket is the admin socket path: flag, serve.admin.socket, else
// admin.sock in the spool directory.
func Socket(f *cmdutil.Factory, flag string) string {
	if flag != "" {
		return flag
	}
	if s := f.Config.GetString(KeySocket); s != "" {
		return s
	}
	return filepath.Join(f.Spool(), "admin.sock")
}

// NewCmdQueue is `relayctl queue`.
func NewCmdQueue(f *cmdutil.Factory) *cobra.Command {
	var socket string
	cmd := &cobra.Command{
		Use:   "queue",
		Short: "See and steer the running relay's queue",
		Long: `List, inspect, retry, hold, release and delete queued messages of a running
relay. The commands talk to "relayctl serve" over its admin socket, a unix
socket only the relay's user can open (admin.sock in the spool directory, or
serve.admin.socket); nothing is reachable over the network.

Exit codes: 0 done, 1 no such message (or nothing to do), 2 bad usage, 3 no
relay answers on the socket.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.PersistentFlags().StringVar(&socket, "socket", "", "admin socket (default: serve.admin.socket or SPOOL/admin.sock)")
	client := func() *admin.Client { return admin.NewClient(Socket(f, socket)) }
	cmd.AddCommand(newList(f, client), newShow(f, client), newRetry(f, client),
		newAction(f, client, "hold", "Stop delivery attempts for a message until released", (*admin.Client).Hold),
		newAction(f, client, "release", "Release a held message: its recipients are tried now", (*admin.Client).Release),
		newDelete(f, client), newThrottles(f, client))
	return cmd
}

func newThrottles(f *cmdutil.Factory, client func() *admin.Client) *cobra.Command {
	return &cobra.Command{
		Use:   "throttles",
		Short: "Show destinations the relay is pacing or has paused after a 421",
		Long: `Show the destination domains with deliveries under way or in the last minute,
and those paused after a 421 or 4.7.x throttling reply, with the reply and
when the pause ends. "queue retry --domain D" does not lift a pause.`,
		Example: `  relayctl queue throttles`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var dests []throttle.Destination
			rep := report.New("queue throttles", "")
			if err := client().Throttles(ctx(cmd), &dests); err != nil {
				if err := apiErr(rep, err); err != nil {
					return err
				}
			}
			if dests == nil {
				dests = []throttle.Destination{}
			}
			rep.Result = dests
			now := f.Now()
			for _, d := range dests {
				if !d.PausedUntil.IsZero() {
					rep.Warn("queue.destination-paused", "%s paused for %s after: %s", d.Domain, age(d.PausedUntil.Sub(now)), d.Reason)
				}
			}
			return f.Output(rep, func(w io.Writer, st *cmdutil.Styles) error {
				if len(dests) == 0 {
					fmt.Fprintln(w, "no destination is being paced or paused")
					return nil
				}
				for _, d := range dests {
					line := fmt.Sprintf("%s  %d connection(s), %d message(s) in the last minute", st.Bold.Render(d.Domain), d.Connections, d.LastMinute)
					fmt.Fprintln(w, line)
					if !d.PausedUntil.IsZero() {
						fmt.Fprintf(w, "  %s for %s\n", st.Warn.Render("paused"), age(d.PausedUntil.Sub(now)))
						for _, l := range cmdutil.Wrap(d.Reason, cmdutil.Width-4) {
							fmt.Fprintf(w, "    %s\n", st.Dim.Render(l))
						}
					}
				}
				return nil
			})
		},
	}
}

// apiErr maps admin errors to exit codes: unreachable → 3, not found or
// conflict → 1 (as a finding), bad request → 2.
func apiErr(rep *report.Report, err error) error {
	var ue *admin.UnreachableError
	var ae *admin.APIError
	switch {
	case errors.As(err, &ue):
		return &cmdutil.IncompleteError{Err: err}
	case errors.As(err, &ae) && ae.Status == 400:
		return &cmdutil.UsageError{Err: err}
	case errors.As(err, &ae) && ae.NotFound():
		rep.Error("queue.not-found", "%s", ae.Message)
		return nil
	case errors.As(err, &ae):
		rep.Error("queue.refused", "%s", ae.Message)
		return nil
	}
	return err
}

// eachID runs call for every ID, maps its errors with apiErr (going on
// past the ones that become findings), notes each success with done, adds
// the successes to res and writes the report.
func eachID(f *cmdutil.Factory, rep *report.Report, res admin.ActionResult, ids []string, call func(id string) (admin.ActionResult, error), done func(id string, r admin.ActionResult)) error {
	for _, id := range ids {
		r, err := call(id)
		if err != nil {
			if err := apiErr(rep, err); err != nil {
				return err
			}
			continue
		}
		res.IDs = append(res.IDs, id)
		res.Recipients += r.Recipients
		done(id, r)
	}
	rep.Result = res
	return f.Output(rep, func(w io.Writer, st *cmdutil.Styles) error {
		st.WriteFindings(w, rep.Findings)
		return nil
	})
}

func ctx(cmd *cobra.Command) context.Context {
	if c := cmd.Context(); c != nil {
		return c
	}
	return context.Background()
}

func newList(f *cmdutil.Factory, client func() *admin.Client) *cobra.Command {
	var domain, state string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List queued messages with their recipients' states",
		Example: `  relayctl queue list
  relayctl queue list --domain gmail.com --state deferred
  relayctl queue list --json | jq '.result[].id'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			envs, err := client().List(ctx(cmd), admin.Filter{Domain: domain, State: queue.State(state)})
			rep := report.New("queue list", "")
			if err != nil {
				if err := apiErr(rep, err); err != nil {
					return err
				}
			}
			if envs == nil {
				envs = []*queue.Envelope{}
			}
			rep.Result = envs
			now := f.Now()
			return f.Output(rep, func(w io.Writer, st *cmdutil.Styles) error {
				pending := 0
				for _, e := range envs {
					writeEnvelope(w, st, e, now, domain, queue.State(state))
					for _, r := range e.Recipients {
						if !r.State.Done() {
							pending++
						}
					}
				}
				fmt.Fprintf(w, "%d message(s), %d recipient(s) pending\n", len(envs), pending)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&domain, "domain", "", "only messages with a recipient at this domain")
	cmd.Flags().StringVar(&state, "state", "", "only messages with a recipient in this state: queued, deferred, held")
	return cmd
}

func age(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%02dh", int(d.Hours())/24, int(d.Hours())%24)
}

func size(n int64) string {
	switch {
	case n < 1024:
		return fmt.Sprintf("%d B", n)
	case n < 1<<20:
		return fmt.Sprintf("%.1f KB", float64(n)/1024)
	}
	return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
}

func stateStyle(st *cmdutil.Styles, s queue.State) string {
	word := fmt.Sprintf("%-9s", s)
	switch s {
	case queue.StateDelivered:
		return st.Pass.Render(word)
	case queue.StateDeferred, queue.StateHeld:
		return st.Warn.Render(word)
	case queue.StateBounced:
		return st.Fail.Render(word)
	}
	return st.Info.Render(word)
}

func writeEnvelope(w io.Writer, st *cmdutil.Styles, e *queue.Envelope, now time.Time, domain string, state queue.State) {
	from := e.From
	if from == "" {
		from = "<>"
	}
	extra := ""
	if e.Stream != "" {
		extra = "  " + e.Stream
	}
	fmt.Fprintf(w, "%s  %s  %s  %s%s\n", st.Bold.Render(e.ID), age(now.Sub(e.Received)), from, size(e.Size), st.Dim.Render(extra))
	for _, r := range e.Recipients {
		if state != "" && r.State != state {
			continue
		}
		if _, d, _ := strings.Cut(r.Address, "@"); domain != "" && !strings.EqualFold(d, domain) {
			continue
		}
		line := fmt.Sprintf("  %s %s", stateStyle(st, r.State), r.Address)
		if r.Attempts > 0 {
			line += fmt.Sprintf("  %d attempt(s)", r.Attempts)
		}
		if !r.State.Done() && r.State != queue.StateHeld && !r.NextAttempt.IsZero() {
			if d := r.NextAttempt.Sub(now); d > 0 {
				line += ", next in " + age(d)
			} else {
				line += ", due now"
			}
		}
		fmt.Fprintln(w, line)
		if r.LastResponse != "" {
			for _, l := range cmdutil.Wrap(r.LastResponse, cmdutil.Width-12) {
				fmt.Fprintf(w, "%12s%s\n", "", st.Dim.Render(l))
			}
		}
	}
}

func newShow(f *cmdutil.Factory, client func() *admin.Client) *cobra.Command {
	return &cobra.Command{
		Use:     "show ID",
		Short:   "Show a message: envelope, headers and every delivery attempt",
		Example: `  relayctl queue show HOMAYJ7BM19047ef7df5`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := client().Show(ctx(cmd), args[0])
			rep := report.New("queue show", args[0])
			if err != nil {
				if err := apiErr(rep, err); err != nil {
					return err
				}
				return f.Output(rep, func(w io.Writer, st *cmdutil.Styles) error {
					st.WriteFindings(w, rep.Findings)
					return nil
				})
			}
			rep.Result = m
			now := f.Now()
			return f.Output(rep, func(w io.Writer, st *cmdutil.Styles) error {
				writeEnvelope(w, st, m.Envelope, now, "", "")
				kv := func(k, v string) {
					if v != "" {
						fmt.Fprintf(w, "  %-11s %s\n", k+":", v)
					}
				}
				kv("received", m.Received.Format(time.RFC3339))
				kv("message-id", m.MessageID)
				kv("auth user", m.AuthUser)
				kv("client", m.ClientIP)
				kv("envid", m.EnvID)
				if len(m.Headers) > 0 {
					fmt.Fprintln(w, st.Heading.Render("Headers"))
					for _, h := range m.Headers {
						for i, l := range cmdutil.Wrap(h.Name+": "+h.Value, cmdutil.Width-4) {
							ind := "  "
							if i > 0 {
								ind = "      "
							}
							fmt.Fprintf(w, "%s%s\n", ind, l)
						}
					}
				}
				if len(m.History) > 0 {
					fmt.Fprintln(w, st.Heading.Render("Attempts"))
					for _, e := range m.History {
						fmt.Fprintf(w, "  %s %-9s %s %s\n", e.Time.Format("2006-01-02 15:04:05"), e.Result, e.Recipient, st.Dim.Render(e.RemoteHost))
						if e.Response != "" {
							for _, l := range cmdutil.Wrap(e.Response, cmdutil.Width-6) {
								fmt.Fprintf(w, "      %s\n", st.Dim.Render(l))
							}
						}
					}
				}
				return nil
			})
		},
	}
}

func newRetry(f *cmdutil.Factory, client func() *admin.Client) *cobra.Command {
	var all bool
	var domain string
	cmd := &cobra.Command{
		Use:   "retry ID... | --all | --domain DOMAIN",
		Short: "Try deferred messages now instead of at their next retry time",
		Example: `  relayctl queue retry HOMAYJ7BM19047ef7df5
  relayctl queue retry --domain gmail.com   # after their throttling ended
  relayctl queue retry --all`,
		RunE: func(cmd *cobra.Command, args []string) error {
			n := len(args)
			if all {
				n++
			}
			if domain != "" {
				n++
			}
			if n == 0 || (len(args) > 0 && (all || domain != "")) || (all && domain != "") {
				return cmdutil.Usagef("give message IDs, or --all, or --domain")
			}
			c := client()
			rep := report.New("queue retry", strings.Join(args, ","))
			res := admin.ActionResult{IDs: []string{}}
			if len(args) == 0 {
				r, err := c.RetryAll(ctx(cmd), domain)
				if err != nil {
					if err := apiErr(rep, err); err != nil {
						return err
					}
				}
				res = r
				rep.Target = domain
				if domain == "" {
					rep.Target = "all"
				}
				rep.Info("queue.retried", "%d message(s), %d recipient(s) due now", len(r.IDs), r.Recipients)
			}
			return eachID(f, rep, res, args, func(id string) (admin.ActionResult, error) {
				return c.Retry(ctx(cmd), id)
			}, func(id string, r admin.ActionResult) {
				rep.Info("queue.retried", "%s: %d recipient(s) due now", id, r.Recipients)
			})
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "every queued message")
	cmd.Flags().StringVar(&domain, "domain", "", "messages with a recipient at this domain")
	return cmd
}

func newAction(f *cmdutil.Factory, client func() *admin.Client, verb, short string, fn func(*admin.Client, context.Context, string) (admin.ActionResult, error)) *cobra.Command {
	past := map[string]string{"hold": "held", "release": "released"}[verb]
	return &cobra.Command{
		Use:     verb + " ID...",
		Short:   short,
		Example: "  relayctl queue " + verb + " HOMAYJ7BM19047ef7df5",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rep := report.New("queue "+verb, strings.Join(args, ","))
			return eachID(f, rep, admin.ActionResult{IDs: []string{}}, args, func(id string) (admin.ActionResult, error) {
				return fn(client(), ctx(cmd), id)
			}, func(id string, r admin.ActionResult) {
				rep.Info("queue."+past, "%s: %d recipient(s) %s", id, r.Recipients, past)
			})
		},
	}
}

func newDelete(f *cmdutil.Factory, client func() *admin.Client) *cobra.Command {
	var bounce bool
	var reason string
	cmd := &cobra.Command{
		Use:   "delete ID...",
		Short: "Remove messages from the queue (--bounce: tell the sender first)",
		Long: `Remove messages from the queue. Without --bounce the sender is not told; with
--bounce a delivery status notification (RFC 3464) reporting the pending
recipients as failed is queued to the sender first (not for bounces
themselves).`,
		Example: `  relayctl queue delete HOMAYJ7BM19047ef7df5
  relayctl queue delete --bounce --reason "recipient domain retired" HOMAYJ7BM19047ef7df5`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if reason != "" && !bounce {
				return cmdutil.Usagef("--reason goes with --bounce")
			}
			rep := report.New("queue delete", strings.Join(args, ","))
			how := "deleted"
			if bounce {
				how = "bounced to the sender and deleted"
			}
			return eachID(f, rep, admin.ActionResult{IDs: []string{}}, args, func(id string) (admin.ActionResult, error) {
				return client().Delete(ctx(cmd), id, bounce, reason)
			}, func(id string, r admin.ActionResult) {
				rep.Info("queue.deleted", "%s: %s (%d recipient(s) pending)", id, how, r.Recipients)
			})
		},
	}
	cmd.Flags().BoolVar(&bounce, "bounce", false, "send the sender a failure DSN for the pending recipients first")
	cmd.Flags().StringVar(&reason, "reason", "", "reason given in the DSN (with --bounce)")
	return cmd
}
