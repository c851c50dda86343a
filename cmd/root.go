// Package cmd is relayctl's cobra command tree. Commands are thin: they
// parse flags, call a pkg/ package, and render its result.
package cmd

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/relayctl/relayctl/cmd/blocklist"
	"github.com/relayctl/relayctl/cmd/check"
	"github.com/relayctl/relayctl/cmd/cmdutil"
	dkimcmd "github.com/relayctl/relayctl/cmd/dkim"
	"github.com/relayctl/relayctl/cmd/queuecmd"
	"github.com/relayctl/relayctl/cmd/reportcmd"
	"github.com/relayctl/relayctl/cmd/send"
	"github.com/relayctl/relayctl/cmd/serve"
	"github.com/relayctl/relayctl/cmd/suppress"
	"github.com/relayctl/relayctl/pkg/report"
)

// Version is set at build time with -ldflags "-X github.com/relayctl/relayctl/cmd.Version=…".
var Version = "dev"

const exitCodesHelp = `Exit codes:
  0  pass (warnings allowed)
  1  a check failed (an error finding; with --strict, a warning too)
  2  bad usage or invalid input
  3  could not complete (DNS timeout, SERVFAIL, network)`

// NewRootCmd builds the command tree around f.
func NewRootCmd(f *cmdutil.Factory) *cobra.Command {
	var configPath string
	root := &cobra.Command{
		Use:   "relayctl",
		Short: "Email deliverability toolkit and relay",
		Long: `relayctl audits what receivers judge before they accept mail (SPF, DKIM,
DMARC, MX, reverse DNS, DNS blocklists) and runs a small authenticated relay
that queues, signs and delivers mail itself.

Global settings come from flags, the config file ($XDG_CONFIG_HOME/relayctl/
config.yaml or --config) and RELAYCTL_* environment variables (e.g.
RELAYCTL_RESOLVER=127.0.0.1:53), in that order of precedence.

` + exitCodesHelp,
		Version:           Version,
		SilenceUsage:      true,
		SilenceErrors:     true,
		DisableAutoGenTag: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			explicit := cmd.Flags().Changed("config")
			path := configPath
			if !explicit {
				path = cmdutil.DefaultConfigPath()
			}
			if err := f.LoadConfigFile(path, explicit); err != nil {
				return err
			}
			if err := f.Config.BindPFlags(cmd.Flags()); err != nil {
				return err
			}
			if d := f.Config.GetString(cmdutil.KeyTimeout); d != "" {
				if _, err := time.ParseDuration(d); err != nil {
					return cmdutil.Usagef("--timeout: invalid duration %q", d)
				}
			}
			f.Started = true
			return nil
		},
	}
	root.SetVersionTemplate("relayctl {{.Version}}\n")
	// Flag help wraps at 80 columns like the rest of the output; every
	// subcommand inherits the template.
	root.SetUsageTemplate(strings.ReplaceAll(root.UsageTemplate(), "FlagUsages ", fmt.Sprintf("FlagUsagesWrapped %d ", cmdutil.Width)))
	pf := root.PersistentFlags()
	pf.StringVar(&configPath, "config", "", "config file (default: XDG config dir, see above)")
	pf.String(cmdutil.KeyResolver, "", "DNS servers host:port[,…] (default: /etc/resolv.conf)")
	pf.Duration(cmdutil.KeyTimeout, 5*time.Second, "timeout per DNS query")
	pf.Bool(cmdutil.KeyJSON, false, "print one JSON object on stdout")
	pf.Bool(cmdutil.KeyNoColor, false, "no colours (also NO_COLOR, or stdout not a terminal)")
	pf.Bool(cmdutil.KeyStrict, false, "fail (exit 1) on warnings too")

	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &cmdutil.UsageError{Err: err} })
	root.SetOut(f.IO.Out)
	root.SetErr(f.IO.ErrOut)
	root.SetIn(f.IO.In)

	root.AddCommand(check.NewCmdCheck(f))
	root.AddCommand(blocklist.NewCmdBlocklist(f, nil))
	root.AddCommand(dkimcmd.NewCmdDKIM(f))
	root.AddCommand(send.NewCmdSend(f, nil))
	root.AddCommand(send.NewCmdSendmail(f, nil))
	root.AddCommand(serve.NewCmdServe(f, nil))
	root.AddCommand(suppress.NewCmdSuppress(f))
	root.AddCommand(reportcmd.NewCmdReport(f, nil))
	root.AddCommand(queuecmd.NewCmdQueue(f))
	return root
}

// Args returns the arguments for Main given the program name and its
// arguments: invoked as "sendmail" (a symlink, /usr/sbin/sendmail),
// relayctl is `relayctl sendmail`.
func Args(argv0 string, args []string) []string {
	if filepath.Base(argv0) == "sendmail" {
		return append([]string{"sendmail"}, args...)
	}
	return args
}

// Main runs relayctl with args and returns the process exit code.
func Main(f *cmdutil.Factory, args []string) int {
	root := NewRootCmd(f)
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return report.ExitOK
	}
	var ee *cmdutil.ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	if !f.Started {
		var ue *cmdutil.UsageError
		if !errors.As(err, &ue) {
			err = &cmdutil.UsageError{Err: err}
		}
	}
	code := cmdutil.ExitCode(err)
	msg := strings.SplitN(strings.TrimSpace(err.Error()), "\n", 2)[0]
	if f.JSON() || (!f.Started && slices.Contains(args, "--json")) {
		code := "relayctl.error"
		switch cmdutil.ExitCode(err) {
		case report.ExitUsage:
			code = "relayctl.usage"
		case report.ExitIncomplete:
			code = "relayctl.incomplete"
		}
		name := strings.TrimPrefix(root.Name(), "relayctl ")
		if c, _, ferr := root.Find(args); ferr == nil {
			name = strings.TrimPrefix(c.CommandPath(), "relayctl ")
		}
		rep := report.New(name, "")
		rep.Error(code, "%s", msg)
		rep.Status = report.StatusError
		_ = rep.WriteJSON(f.IO.Out)
	}
	fmt.Fprintf(f.IO.ErrOut, "relayctl: %s\n", msg)
	return code
}
