package dkim

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/miekg/dns"
	"github.com/spf13/cobra"

	"github.com/relayctl/relayctl/cmd/cmdutil"
	"github.com/relayctl/relayctl/pkg/dkim"
	"github.com/relayctl/relayctl/pkg/report"
)

// KeygenOptions are the inputs of `relayctl dkim keygen`.
type KeygenOptions struct {
	Domain, Selector string
	Algo             string
	Bits             int
	BitsSet          bool
	Out              string
	Force            bool
}

// KeygenResult is the JSON result of keygen.
type KeygenResult struct {
	Domain    string   `json:"domain"`
	Selector  string   `json:"selector"`
	Algorithm string   `json:"algorithm"`
	Bits      int      `json:"bits"`
	KeyFile   string   `json:"key_file"`
	Name      string   `json:"name"`
	Value     string   `json:"value"`
	Strings   []string `json:"strings"`
	ZoneLine  string   `json:"zone_line"`
}

// NewCmdKeygen is `relayctl dkim keygen`. runF replaces the run function in
// flag-parsing tests.
func NewCmdKeygen(f *cmdutil.Factory, runF func(*KeygenOptions) error) *cobra.Command {
	opts := &KeygenOptions{}
	cmd := &cobra.Command{
		Use:   "keygen --domain DOMAIN --selector SELECTOR",
		Short: "Generate a DKIM key pair and print the DNS record to publish",
		Long: `Generate a DKIM signing key and print the TXT record that publishes it.

The private key is written as PEM (PKCS#8) with mode 0600 to
DIR/SELECTOR.DOMAIN.pem (--out, default the current directory); an existing
file is never replaced unless --force is given.

RSA keys are 2048 bits by default (--bits 3072 or 4096 for more); keys under
1024 bits are refused and keys under 2048 draw a warning (RFC 8301 §3.2).
Ed25519 keys (--algo ed25519, RFC 8463) are small but not yet verified by
every receiver: publish them beside an RSA key under a second selector.

The record is printed three ways: its name, its value, and a zone-file line
with the value split into quoted strings of at most 255 bytes.`,
		Example: `  relayctl dkim keygen --domain example.com --selector s2026
  relayctl dkim keygen --domain example.com --selector ed1 --algo ed25519 --out /etc/relayctl/dkim
  relayctl dkim keygen --domain example.com --selector s2026 --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.BitsSet = cmd.Flags().Changed("bits")
			if err := requireFlags(cmd, "domain", "selector"); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return keygenRun(f, opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.Domain, "domain", "", "signing domain (d=)")
	fl.StringVar(&opts.Selector, "selector", "", "selector (s=)")
	fl.StringVar(&opts.Algo, "algo", "rsa", "key algorithm: rsa or ed25519")
	fl.IntVar(&opts.Bits, "bits", dkim.RecommendedRSABits, "RSA key size: 2048, 3072 or 4096 (at least 1024)")
	fl.StringVar(&opts.Out, "out", ".", "directory for the private key file")
	fl.BoolVar(&opts.Force, "force", false, "overwrite an existing key file")
	return cmd
}

// requireFlags returns a usage error (exit 2) naming the missing flags.
// cobra's MarkFlagRequired is checked after the root's pre-run, where its
// error would no longer count as bad usage.
func requireFlags(cmd *cobra.Command, names ...string) error {
	var missing []string
	for _, n := range names {
		if !cmd.Flags().Changed(n) {
			missing = append(missing, "--"+n)
		}
	}
	if len(missing) > 0 {
		return cmdutil.Usagef("missing required flag(s): %s", strings.Join(missing, ", "))
	}
	return nil
}

// ValidDomain checks a signing domain name.
func ValidDomain(d string) error {
	if _, ok := dns.IsDomainName(d); !ok || d == "" || strings.HasPrefix(d, ".") || strings.Contains(d, "..") || strings.ContainsAny(d, " \t@/") {
		return fmt.Errorf("invalid domain %q", d)
	}
	return nil
}

// signingDomain normalises --domain (lower case, no trailing dot) and
// checks it and --selector, returning a usage error for either.
func signingDomain(domain, selector string) (string, error) {
	domain = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(domain)), ".")
	if err := ValidDomain(domain); err != nil {
		return "", cmdutil.Usagef("--domain: %v", err)
	}
	if err := dkim.ValidSelector(selector); err != nil {
		return "", cmdutil.Usagef("--selector: %v", err)
	}
	return domain, nil
}

func keygenRun(f *cmdutil.Factory, opts *KeygenOptions) error {
	domain, err := signingDomain(opts.Domain, opts.Selector)
	if err != nil {
		return err
	}
	algo := strings.ToLower(opts.Algo)
	switch algo {
	case dkim.AlgoRSA:
		if opts.Bits < dkim.MinRSABits {
			return cmdutil.Usagef("--bits %d: RSA keys under %d bits are refused by verifiers (RFC 8301 §3.2)", opts.Bits, dkim.MinRSABits)
		}
		if opts.Bits > dkim.MaxRSABits {
			return cmdutil.Usagef("--bits %d: at most %d", opts.Bits, dkim.MaxRSABits)
		}
	case dkim.AlgoEd25519:
		if opts.BitsSet {
			return cmdutil.Usagef("--bits applies to RSA keys only (Ed25519 keys are always 256 bits)")
		}
	default:
		return cmdutil.Usagef("--algo %q: want rsa or ed25519", opts.Algo)
	}

	rep := report.New("dkim keygen", dkim.RecordName(opts.Selector, domain))
	key, err := dkim.GenerateKey(algo, opts.Bits)
	if err != nil {
		return err
	}
	pemBytes, err := dkim.MarshalPrivateKey(key)
	if err != nil {
		return err
	}
	rec, err := dkim.NewRecord(opts.Selector, domain, key.Public())
	if err != nil {
		return err
	}
	path := filepath.Join(opts.Out, opts.Selector+"."+domain+".pem")
	if err := dkim.WriteKeyFile(path, pemBytes, opts.Force); err != nil {
		if errors.Is(err, dkim.ErrExists) {
			return cmdutil.Usagef("%s exists; refusing to overwrite a key (use --force)", path)
		}
		return cmdutil.Usagef("%v", err)
	}
	_, bits, _, _ := dkim.KeyInfo(key.Public())
	if algo == dkim.AlgoRSA && bits < dkim.RecommendedRSABits {
		rep.Warn(dkim.CodeKeyShort, "RSA key is %d bits: signers should use at least 2048 (RFC 8301 §3.2)", bits)
	}
	if algo == dkim.AlgoEd25519 {
		rep.Info("dkim.ed25519-support", "not every receiver verifies Ed25519 yet: also sign with an RSA key under another selector")
	}
	res := KeygenResult{Domain: domain, Selector: opts.Selector, Algorithm: algo, Bits: bits, KeyFile: path,
		Name: rec.Name, Value: rec.Value, Strings: rec.Strings, ZoneLine: rec.ZoneLine}
	rep.Result = res
	return f.Output(rep, func(w io.Writer, st *cmdutil.Styles) error {
		desc := fmt.Sprintf("RSA %d bits", bits)
		if algo == dkim.AlgoEd25519 {
			desc = "Ed25519"
		}
		fmt.Fprintf(w, "%s %s (%s, mode 0600)\n\n", st.Bold.Render("Private key:"), path, desc)
		fmt.Fprintf(w, "%s\n", st.Heading.Render("Publish this TXT record"))
		fmt.Fprintf(w, "  %s %s\n", st.Dim.Render("name: "), rec.Name)
		fmt.Fprintf(w, "  %s\n%s\n", st.Dim.Render("value:"), rec.Value)
		fmt.Fprintf(w, "  %s\n%s\n", st.Dim.Render(fmt.Sprintf("zone-file line (%d string(s) of at most 255 bytes):", len(rec.Strings))), rec.ZoneLine)
		if len(rep.Findings) > 0 {
			fmt.Fprintln(w)
			st.WriteFindings(w, rep.Findings)
		}
		fmt.Fprintf(w, "\nThen check it: relayctl check dkim %s --selector %s\n", domain, opts.Selector)
		return nil
	})
}
