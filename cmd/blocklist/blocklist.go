// Package blocklist is `relayctl blocklist`: check IPs, ranges and
// domains against DNS blocklists (RFC 5782) with per-list interpretation
// of the answers.
package blocklist

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/relayctl/relayctl/cmd/cmdutil"
	"github.com/relayctl/relayctl/pkg/dnsbl"
)

// Configuration keys (config file `blocklist:` section, or
// RELAYCTL_BLOCKLIST_* environment variables).
const (
	KeyZones       = "blocklist.zones"
	KeyAddZones    = "blocklist.add-zones"
	KeyDQSKey      = "blocklist.dqs-key"
	KeyConcurrency = "blocklist.concurrency"
)

// Options are the parsed flags and arguments.
type Options struct {
	Args        []string
	File        string
	Zones       []string
	AddZones    []string
	DQSKey      string
	SelfTest    bool
	Concurrency int
	Force       bool
	All         bool
}

// NewCmdBlocklist is `relayctl blocklist`. runF replaces the run function
// in tests of flag parsing (nil: the real one).
func NewCmdBlocklist(f *cmdutil.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	opts := &Options{}
	cmd := &cobra.Command{
		Use:   "blocklist [TARGET…]",
		Short: "Check IPs, ranges and domains against DNS blocklists",
		Long: `Check IP addresses, CIDR ranges and domains against DNS blocklists (RFC 5782).

A target is an IPv4 or IPv6 address, a CIDR range (at most a /16 for IPv4
or a /112 for IPv6 unless --force), or a domain name. A domain is checked
against the domain lists (Spamhaus DBL, URIBL) and its MX hosts' addresses
and the ip4/ip6/a/mx addresses of its SPF record are checked against the IP
lists; each address says where it came from.

Answers are interpreted per list: Spamhaus ZEN names the sub-list (SBL, CSS,
XBL, PBL…) and what it means for a sender, and error answers (Spamhaus
127.255.255.x "query via a public resolver", URIBL 127.0.0.1, answers outside
127.0.0.0/8 from a hijacking resolver) are reported as errors, never as
listings.

Default lists: ` + strings.Join(dnsbl.DefaultZones[:3], ", ") + `,
` + strings.Join(dnsbl.DefaultZones[3:], ", ") + `.
--zones replaces the set, --add-zones extends it (also the config keys
blocklist.zones and blocklist.add-zones; blocklist.dqs-key and
blocklist.concurrency configure the flags of the same name).
A zone is a name, optionally with ":ip", ":ip6" (also answers IPv6) or
":domain"; unknown names are generic RFC 5782 IP lists.

Exit codes: 0 every list answered and nothing is listed, 1 something is
listed (or --selftest found a dead or list-everything list), 2 bad input,
3 nothing is listed but some lists could not be asked (timeout, SERVFAIL,
refused, broken resolver).`,
		Example: `  relayctl blocklist 192.0.2.1
  relayctl blocklist 2001:db8::25 example.com
  relayctl blocklist --file ips.txt --json
  relayctl blocklist 198.51.100.0/24 --zones zen.spamhaus.org
  relayctl blocklist --selftest
  relayctl blocklist 192.0.2.1 --dqs-key abcdefghijklmnopqrstuvwxyz`,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Args = args
			if err := resolveOptions(cmd, f, opts); err != nil {
				return err
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return run(cmd.Context(), f, opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&opts.File, "file", "f", "", "read targets from FILE, one per line (- = stdin)")
	fl.StringSliceVar(&opts.Zones, "zones", nil, "lists to ask instead of the default set")
	fl.StringSliceVar(&opts.AddZones, "add-zones", nil, "lists to ask in addition to the set")
	fl.StringVar(&opts.DQSKey, "dqs-key", "", "Spamhaus DQS key: ask KEY.<zone>.dq.spamhaus.net")
	fl.BoolVar(&opts.SelfTest, "selftest", false, "ask each list's RFC 5782 test points first")
	fl.IntVar(&opts.Concurrency, "concurrency", dnsbl.DefaultConcurrency, "DNS queries in flight at most")
	fl.BoolVar(&opts.Force, "force", false, "allow ranges larger than /16 (IPv4) or /112 (IPv6)")
	fl.BoolVar(&opts.All, "all", false, "bulk runs: show clean targets too")
	return cmd
}

// resolveOptions fills options not given as flags from the configuration.
func resolveOptions(cmd *cobra.Command, f *cmdutil.Factory, o *Options) error {
	v := f.Config
	if !cmd.Flags().Changed("zones") && v.IsSet(KeyZones) {
		o.Zones = stringList(v.Get(KeyZones))
	}
	if !cmd.Flags().Changed("add-zones") && v.IsSet(KeyAddZones) {
		o.AddZones = stringList(v.Get(KeyAddZones))
	}
	if !cmd.Flags().Changed("dqs-key") && v.IsSet(KeyDQSKey) {
		o.DQSKey = v.GetString(KeyDQSKey)
	}
	if !cmd.Flags().Changed("concurrency") && v.IsSet(KeyConcurrency) {
		o.Concurrency = v.GetInt(KeyConcurrency)
	}
	if o.Concurrency < 1 || o.Concurrency > 4096 {
		return cmdutil.Usagef("--concurrency must be between 1 and 4096, not %d", o.Concurrency)
	}
	if len(o.Args) == 0 && o.File == "" && !o.SelfTest {
		return cmdutil.Usagef("no target: give IPs, ranges or domains, --file FILE, or --selftest")
	}
	return nil
}

// stringList reads a list from the config: a YAML sequence, or a
// comma/space-separated string (environment variables).
func stringList(v any) []string {
	switch x := v.(type) {
	case []string:
		return x
	case []any:
		var out []string
		for _, e := range x {
			out = append(out, fmt.Sprint(e))
		}
		return out
	case string:
		return strings.FieldsFunc(x, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' })
	}
	return nil
}

// zones builds the zone set from the options.
func zones(o *Options) ([]dnsbl.Zone, error) {
	specs := dnsbl.DefaultZones
	if len(o.Zones) > 0 {
		specs = o.Zones
	}
	zs, err := dnsbl.ParseZones(append(append([]string(nil), specs...), o.AddZones...))
	if err != nil {
		return nil, cmdutil.Usagef("%v", err)
	}
	if len(zs) == 0 {
		return nil, cmdutil.Usagef("--zones: no list given")
	}
	zs, err = dnsbl.WithDQSKey(zs, o.DQSKey)
	if err != nil {
		return nil, cmdutil.Usagef("--dqs-key: %v", err)
	}
	for _, z := range zs {
		if z.NeedsDQSKey() {
			return nil, cmdutil.Usagef("%s is served only through the Spamhaus Data Query Service: give --dqs-key", z.Name)
		}
	}
	return zs, nil
}

// targets parses the arguments and --file.
func targets(f *cmdutil.Factory, o *Options) ([]dnsbl.Target, error) {
	var out []dnsbl.Target
	for _, a := range o.Args {
		t, err := dnsbl.ParseTarget(a, o.Force)
		if err != nil {
			return nil, cmdutil.Usagef("%v", err)
		}
		out = append(out, t)
	}
	if o.File != "" {
		var (
			r    io.Reader = f.IO.In
			name           = "stdin"
		)
		if o.File != "-" {
			fh, err := os.Open(o.File)
			if err != nil {
				return nil, cmdutil.Usagef("--file: %v", err)
			}
			defer fh.Close()
			r, name = fh, o.File
		}
		ts, err := dnsbl.ReadTargets(r, name, o.Force)
		if err != nil {
			if errors.Is(err, dnsbl.ErrTarget) {
				return nil, cmdutil.Usagef("%v", err)
			}
			return nil, &cmdutil.IncompleteError{Err: err}
		}
		if len(ts) == 0 && len(o.Args) == 0 && !o.SelfTest {
			return nil, cmdutil.Usagef("--file %s: no target in the file", o.File)
		}
		out = append(out, ts...)
	}
	total := 0
	for _, t := range out {
		total += t.Size()
	}
	if total > dnsbl.MaxAddresses {
		return nil, cmdutil.Usagef("%d addresses to check, more than the %d one run can check; split the input", total, dnsbl.MaxAddresses)
	}
	return out, nil
}
