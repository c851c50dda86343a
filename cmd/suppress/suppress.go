// Package suppress holds `relayctl suppress …`: the suppression list of
// recipients the relay refuses to send to.
package suppress

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/relayctl/relayctl/cmd/cmdutil"
	"github.com/relayctl/relayctl/pkg/report"
	"github.com/relayctl/relayctl/pkg/suppress"
)

// Configuration keys (the `serve.suppression` section).
const (
	KeyFile          = "serve.suppression.file"
	KeyHardCodes     = "serve.suppression.hard_codes"
	KeySoftThreshold = "serve.suppression.soft_threshold"
	KeySoftPeriod    = "serve.suppression.soft_period"
	KeySoftExpiry    = "serve.suppression.soft_expiry"
	KeyAction        = "serve.suppression.action"
)

// File is the suppression list's path: --file, serve.suppression.file,
// else suppress.json in the spool directory (serve.spool).
func File(f *cmdutil.Factory, flag string) string {
	if flag != "" {
		return flag
	}
	if p := f.Config.GetString(KeyFile); p != "" {
		return p
	}
	return suppress.DefaultFile(f.Spool())
}

// Policy reads the bounce rules from the configuration.
func Policy(f *cmdutil.Factory) (suppress.Policy, error) {
	p := suppress.DefaultPolicy()
	v := f.Config
	if v.IsSet(KeyHardCodes) {
		p.HardCodes = v.GetStringSlice(KeyHardCodes)
	}
	if v.IsSet(KeySoftThreshold) {
		p.SoftThreshold = v.GetInt(KeySoftThreshold)
	}
	for key, dst := range map[string]*time.Duration{KeySoftPeriod: &p.SoftPeriod, KeySoftExpiry: &p.SoftExpiry} {
		if !v.IsSet(key) {
			continue
		}
		d, err := time.ParseDuration(v.GetString(key))
		if err != nil {
			return p, cmdutil.Usagef("%s: %v", key, err)
		}
		*dst = d
	}
	if v.IsSet(KeyAction) {
		p.Action = v.GetString(KeyAction)
	}
	if err := p.Validate(); err != nil {
		return p, cmdutil.Usagef("serve.suppression: %v", err)
	}
	return p, nil
}

// Open opens the store the configuration names.
func Open(f *cmdutil.Factory, fileFlag string) (*suppress.Store, error) {
	p, err := Policy(f)
	if err != nil {
		return nil, err
	}
	s, err := suppress.Open(File(f, fileFlag), p, f.Now)
	if err != nil {
		return nil, fmt.Errorf("suppression list: %w", err)
	}
	return s, nil
}

// NewCmdSuppress is `relayctl suppress`.
func NewCmdSuppress(f *cmdutil.Factory) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "suppress",
		Short: "List and edit the suppression list",
		Long: `The suppression list holds recipients the relay will not send to: addresses
that hard-bounced (5.1.x, 5.2.1 or configured codes), bounced softly too often
in a row, or were added by hand. A message to a suppressed recipient is
refused at RCPT TO with 550 5.7.1 and the reason, or, with
serve.suppression.action: drop, accepted and never sent (logged as a
"suppressed" delivery event).

The list is a file next to the queue (suppress.json in the spool directory,
or serve.suppression.file); these commands edit it directly and safely while
the relay runs. An entry "@example.com" suppresses a whole domain.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.PersistentFlags().StringVar(&file, "file", "", "list file (default: serve.suppression.file or SPOOL/suppress.json)")
	cmd.AddCommand(newList(f, &file), newAdd(f, &file), newRemove(f, &file), newImport(f, &file), newExport(f, &file))
	return cmd
}

func newList(f *cmdutil.Factory, file *string) *cobra.Command {
	var all bool
	var source string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "Show suppressed addresses",
		Example: `  relayctl suppress list
  relayctl suppress list --source hard-bounce --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := Open(f, *file)
			if err != nil {
				return err
			}
			list, err := s.List()
			if err != nil {
				return err
			}
			now := f.Now()
			out := []suppress.Entry{}
			for _, e := range list {
				if (all || e.Active(now)) && (source == "" || string(e.Source) == source) {
					out = append(out, e)
				}
			}
			rep := report.New("suppress list", s.Path())
			rep.Result = out
			return f.Output(rep, func(w io.Writer, st *cmdutil.Styles) error {
				if len(out) == 0 {
					fmt.Fprintln(w, "no suppressed addresses")
					return nil
				}
				for _, e := range out {
					fmt.Fprintf(w, "%s  %s  %s\n", st.Bold.Render(e.Address), st.Info.Render(string(e.Source)), st.Dim.Render(e.Added.Format("2006-01-02")))
					detail := e.Reason
					if e.Code != 0 && !strings.HasPrefix(detail, fmt.Sprint(e.Code)) && e.Source == suppress.HardBounce {
						detail = strings.TrimSpace(fmt.Sprintf("%d %s %s", e.Code, e.Enhanced, detail))
					}
					if !e.Expires.IsZero() {
						detail += " (until " + e.Expires.Format("2006-01-02") + ")"
					}
					for _, l := range cmdutil.Wrap(detail, cmdutil.Width-4) {
						if l != "" {
							fmt.Fprintf(w, "    %s\n", l)
						}
					}
				}
				fmt.Fprintf(w, "%d suppressed\n", len(out))
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "include expired soft-bounce entries")
	cmd.Flags().StringVar(&source, "source", "", "only entries from this source: hard-bounce, soft-bounce, manual, import")
	return cmd
}

func newAdd(f *cmdutil.Factory, file *string) *cobra.Command {
	var reason string
	var expires time.Duration
	cmd := &cobra.Command{
		Use:   "add ADDRESS|@DOMAIN...",
		Short: "Suppress addresses (or whole domains)",
		Example: `  relayctl suppress add complainer@example.org --reason "asked us to stop"
  relayctl suppress add @spamtrap.example`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			addrs, err := normalize(args)
			if err != nil {
				return err
			}
			s, err := Open(f, *file)
			if err != nil {
				return err
			}
			rep := report.New("suppress add", strings.Join(args, ","))
			var added []string
			for i, n := range addrs {
				e := suppress.Entry{Address: args[i], Source: suppress.Manual, Reason: reason}
				if expires > 0 {
					e.Expires = f.Now().Add(expires).UTC()
				}
				if err := s.Add(e); err != nil {
					return err
				}
				added = append(added, n)
				rep.Info("suppress.added", "%s suppressed", n)
			}
			rep.Result = map[string]any{"added": added}
			return f.Output(rep, func(w io.Writer, st *cmdutil.Styles) error {
				for _, a := range added {
					fmt.Fprintf(w, "%s %s\n", st.Pass.Render("suppressed"), a)
				}
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why (shown in the RCPT refusal, or logged when dropped)")
	cmd.Flags().DurationVar(&expires, "expires", 0, "lift the suppression after this long (e.g. 720h); default never")
	return cmd
}

func newRemove(f *cmdutil.Factory, file *string) *cobra.Command {
	return &cobra.Command{
		Use:     "remove ADDRESS|@DOMAIN...",
		Aliases: []string{"rm", "delete"},
		Short:   "Lift suppressions (exit 1 if an address was not listed)",
		Example: `  relayctl suppress remove user@example.org`,
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			addrs, err := normalize(args)
			if err != nil {
				return err
			}
			s, err := Open(f, *file)
			if err != nil {
				return err
			}
			rep := report.New("suppress remove", strings.Join(args, ","))
			removed := []string{}
			for i, n := range addrs {
				found, err := s.Remove(args[i])
				if err != nil {
					return err
				}
				if found {
					removed = append(removed, n)
					rep.Info("suppress.removed", "%s no longer suppressed", n)
				} else {
					rep.Error("suppress.not-listed", "%s was not on the suppression list", n)
				}
			}
			rep.Result = map[string]any{"removed": removed}
			return f.Output(rep, func(w io.Writer, st *cmdutil.Styles) error {
				st.WriteFindings(w, rep.Findings)
				return nil
			})
		},
	}
}

// normalize checks every argument is an address or @domain (exit 2
// otherwise) and returns them normalized.
func normalize(args []string) ([]string, error) {
	addrs := make([]string, len(args))
	for i, a := range args {
		n, err := suppress.Normalize(a)
		if err != nil {
			return nil, &cmdutil.UsageError{Err: err}
		}
		addrs[i] = n
	}
	return addrs, nil
}

func newImport(f *cmdutil.Factory, file *string) *cobra.Command {
	return &cobra.Command{
		Use:   "import FILE|-",
		Short: "Add addresses from a file (one per line, or the CSV of export)",
		Long: `Add addresses from FILE (- for stdin): one address or @domain per line,
optionally followed by ",reason"; blank lines and # comments are skipped. The
CSV written by "suppress export" is read back with its sources and dates. A
bad line stops the import before anything is written.`,
		Example: `  relayctl suppress import bounces-from-old-esp.txt
  relayctl suppress export > list.csv && relayctl suppress --file /new/spool/suppress.json import list.csv`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var r io.Reader = f.IO.In
			if args[0] != "-" {
				fh, err := os.Open(args[0])
				if err != nil {
					return cmdutil.Usagef("import: %v", err)
				}
				defer fh.Close()
				r = fh
			}
			s, err := Open(f, *file)
			if err != nil {
				return err
			}
			n, err := s.Import(r, suppress.Imported)
			if err != nil {
				return &cmdutil.UsageError{Err: err}
			}
			rep := report.New("suppress import", args[0])
			rep.Info("suppress.imported", "%d address(es) imported", n)
			rep.Result = map[string]int{"imported": n}
			return f.Output(rep, func(w io.Writer, st *cmdutil.Styles) error {
				fmt.Fprintf(w, "%d address(es) imported into %s\n", n, s.Path())
				return nil
			})
		},
	}
}

func newExport(f *cmdutil.Factory, file *string) *cobra.Command {
	return &cobra.Command{
		Use:     "export",
		Short:   "Write the list as CSV on stdout",
		Example: `  relayctl suppress export > suppressed.csv`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := Open(f, *file)
			if err != nil {
				return err
			}
			if f.JSON() {
				list, err := s.List()
				if err != nil {
					return err
				}
				rep := report.New("suppress export", s.Path())
				rep.Result = list
				return f.Output(rep, func(io.Writer, *cmdutil.Styles) error { return nil })
			}
			return s.Export(f.IO.Out)
		},
	}
}
