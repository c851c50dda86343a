package check

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/miekg/dns"
	"github.com/spf13/cobra"

	"github.com/relayctl/relayctl/cmd/cmdutil"
	"github.com/relayctl/relayctl/pkg/dkim"
	"github.com/relayctl/relayctl/pkg/report"
)

// DKIMOptions are the inputs of `relayctl check dkim`.
type DKIMOptions struct {
	Domain    string
	Selectors []string
	Message   string // file or "-"
	Ignore    []string
}

// DKIMSelectorsResult is the JSON result of a domain check.
type DKIMSelectorsResult = dkim.DomainResult

// DKIMMessageResult is the JSON result of a message verification.
type DKIMMessageResult struct {
	File          string              `json:"file"`
	CRLFConverted bool                `json:"crlf_converted"`
	Signatures    []dkim.Verification `json:"signatures"`
	Passed        int                 `json:"passed"`
}

// NewCmdDKIM is `relayctl check dkim`.
func NewCmdDKIM(f *cmdutil.Factory, runF func(*DKIMOptions) error) *cobra.Command {
	opts := &DKIMOptions{}
	cmd := &cobra.Command{
		Use:   "dkim [DOMAIN --selector S[,S2…] | --message FILE]",
		Short: "Audit DKIM key records, or verify a message's DKIM signatures",
		Long: `Audit a domain's DKIM key records, or verify the DKIM signatures of a message.

With DOMAIN, each selector's record at SELECTOR._domainkey.DOMAIN is looked up
(CNAME delegation is followed and shown) and checked: exactly one TXT
record, v=DKIM1 first if present, a known key type (k=rsa or ed25519), a key
that decodes, its size (error under 1024 bits, warning under 2048), revoked
keys (empty p=), testing mode (t=y), h= and s= restrictions that stop mail
from verifying, and record split mistakes (quotes or whitespace inside the
base64). Without --selector, common selectors (default, selector1, google,
k1, s1, mail, dkim, …) are tried and those found are reported.

With --message FILE (or - for stdin), every DKIM-Signature is verified
(RFC 6376) with keys fetched through --resolver, and each signature's d=,
s=, a=, canonicalization and result (pass, fail, neutral, temperror,
permerror) are shown with the reason on failure. The check fails (exit 1)
when no signature passes; failures beside a passing signature are warnings.
Messages with LF line endings are verified as CRLF (a note says so).

Finding codes are listed in docs/dkim.md; --ignore drops accepted ones.`,
		Example: `  relayctl check dkim example.com --selector s2026
  relayctl check dkim example.com --selector s2026,ed1 --json
  relayctl check dkim example.com
  relayctl check dkim --message signed.eml --resolver 127.0.0.1:5353`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				opts.Domain = args[0]
			}
			switch {
			case opts.Message != "" && opts.Domain != "":
				return cmdutil.Usagef("give either DOMAIN or --message, not both")
			case opts.Message != "" && len(opts.Selectors) > 0:
				return cmdutil.Usagef("--selector applies to DOMAIN checks; a message names its own selectors")
			case opts.Message == "" && opts.Domain == "":
				return cmdutil.Usagef("give a DOMAIN (with --selector) or --message FILE")
			}
			if runF != nil {
				return runF(opts)
			}
			if opts.Message != "" {
				return dkimMessageRun(cmd.Context(), f, opts)
			}
			return dkimDomainRun(cmd.Context(), f, opts)
		},
	}
	fl := cmd.Flags()
	fl.StringSliceVarP(&opts.Selectors, "selector", "s", nil, "selector(s) to check, comma-separated (default: try common ones)")
	fl.StringVarP(&opts.Message, "message", "m", "", "verify the DKIM signatures of this message file (- for stdin)")
	fl.StringSliceVar(&opts.Ignore, "ignore", nil, "finding codes to drop (e.g. dkim.key-short or dkim.*)")
	return cmd
}

func ctxOrBackground(ctx context.Context) context.Context {
	if ctx == nil {
		return context.Background()
	}
	return ctx
}

func dkimDomainRun(ctx context.Context, f *cmdutil.Factory, opts *DKIMOptions) error {
	ctx = ctxOrBackground(ctx)
	domain := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(opts.Domain)), ".")
	if _, ok := dns.IsDomainName(domain); !ok || domain == "" || strings.Contains(domain, "..") || strings.ContainsAny(domain, " @/") {
		return cmdutil.Usagef("invalid domain %q", opts.Domain)
	}
	var sels []string
	for _, s := range opts.Selectors {
		s = strings.TrimSpace(s)
		if err := dkim.ValidSelector(s); err != nil {
			return cmdutil.Usagef("--selector: %v", err)
		}
		sels = append(sels, s)
	}
	r, err := f.Resolver()
	if err != nil {
		return err
	}
	rep := report.New("check dkim", domain)
	res, lookupErr := dkim.CheckDomain(ctx, r, domain, sels)
	domainFindings := filter(res.Findings, opts.Ignore)
	rep.Findings = append(rep.Findings, domainFindings...)
	for _, sr := range res.Selectors {
		sr.Findings = filter(sr.Findings, opts.Ignore)
		for _, fd := range sr.Findings {
			rep.Add(fd.Code, fd.Severity, "%s: %s", sr.Selector, fd.Message)
		}
	}
	if lookupErr != nil {
		rep.Incomplete = true
		rep.Warn(dkim.CodeLookupFailed, "%v", lookupErr)
	}
	rep.Ignore(opts.Ignore)
	rep.Result = res
	return f.Output(rep, func(w io.Writer, st *cmdutil.Styles) error {
		if res.Discovered {
			fmt.Fprintf(w, "Tried %d common selectors; found %d.\n\n", len(res.Tried), len(res.Selectors))
		}
		for _, sr := range res.Selectors {
			status := report.StatusOf(sr.Findings, false)
			fmt.Fprintf(w, "%s %s\n", st.Bold.Render(sr.Name), st.Status(status))
			if len(sr.CNAMEs) > 0 {
				fmt.Fprintf(w, "  %s %s\n", st.Dim.Render("CNAME →"), strings.Join(sr.CNAMEs, " → "))
			}
			if sr.Key != nil {
				fmt.Fprintf(w, "  %s\n", describeKey(sr.Key))
			}
			for _, rec := range sr.Records {
				for _, line := range hardWrap(rec, cmdutil.Width-4) {
					fmt.Fprintf(w, "    %s\n", st.Dim.Render(line))
				}
			}
			st.WriteFindings(w, sr.Findings)
			fmt.Fprintln(w)
		}
		if lookupErr != nil {
			fmt.Fprintf(w, "%s %v\n\n", st.Fail.Render("could not complete:"), lookupErr)
		}
		if len(domainFindings) > 0 {
			st.WriteFindings(w, domainFindings)
			fmt.Fprintln(w)
		}
		st.WriteSummary(w, rep)
		return nil
	})
}

// hardWrap wraps at spaces and cuts words longer than width (base64).
func hardWrap(text string, width int) []string {
	var out []string
	for _, line := range cmdutil.Wrap(text, width) {
		for len(line) > width {
			out = append(out, line[:width])
			line = line[width:]
		}
		out = append(out, line)
	}
	return out
}

func describeKey(k *dkim.KeyRecord) string {
	var parts []string
	switch {
	case k.Revoked:
		parts = append(parts, "revoked key (empty p=)")
	case k.Key == nil:
		parts = append(parts, "k="+k.KeyType+", key does not decode")
	case k.KeyType == dkim.AlgoEd25519:
		parts = append(parts, "Ed25519 key")
	default:
		parts = append(parts, fmt.Sprintf("RSA %d-bit key", k.Bits))
	}
	if k.Testing {
		parts = append(parts, "testing (t=y)")
	}
	if len(k.Hashes) > 0 {
		parts = append(parts, "h="+strings.Join(k.Hashes, ":"))
	}
	if len(k.Services) > 0 {
		parts = append(parts, "s="+strings.Join(k.Services, ":"))
	}
	return strings.Join(parts, ", ")
}

func filter(fs []report.Finding, ignore []string) []report.Finding {
	out := []report.Finding{}
	for _, f := range fs {
		if !report.Matches(f.Code, ignore) {
			out = append(out, f)
		}
	}
	return out
}

func dkimMessageRun(ctx context.Context, f *cmdutil.Factory, opts *DKIMOptions) error {
	ctx = ctxOrBackground(ctx)
	var raw []byte
	var err error
	name := opts.Message
	if opts.Message == "-" {
		name = "stdin"
		raw, err = io.ReadAll(f.IO.In)
		if err != nil {
			return &cmdutil.IncompleteError{Err: fmt.Errorf("reading stdin: %w", err)}
		}
	} else if raw, err = os.ReadFile(opts.Message); err != nil {
		return cmdutil.Usagef("--message: %v", err)
	}
	msg, converted := dkim.ToCRLF(raw)
	if converted {
		fmt.Fprintln(f.IO.ErrOut, "relayctl: note: message has LF line endings; verifying it as CRLF")
	}
	r, err := f.Resolver()
	if err != nil {
		return err
	}
	vs, err := dkim.Verify(ctx, r, bytes.NewReader(msg))
	if err != nil {
		return cmdutil.Usagef("%s: %v", name, err)
	}
	rep := report.New("check dkim", name)
	res := DKIMMessageResult{File: name, CRLFConverted: converted, Signatures: vs}
	if res.Signatures == nil {
		res.Signatures = []dkim.Verification{}
	}
	for _, v := range vs {
		if v.Result == dkim.ResultPass {
			res.Passed++
		}
	}
	rep.Findings, rep.Incomplete = dkim.MessageFindings(vs)
	rep.Ignore(opts.Ignore)
	rep.Result = res
	return f.Output(rep, func(w io.Writer, st *cmdutil.Styles) error {
		for i, v := range vs {
			word := st.Fail.Render(strings.ToUpper(v.Result))
			if v.Result == dkim.ResultPass {
				word = st.Pass.Render("PASS")
			}
			fmt.Fprintf(w, "%s %d  %s\n", st.Bold.Render("Signature"), i+1, word)
			fmt.Fprintf(w, "  d=%s s=%s a=%s c=%s\n", v.Domain, v.Selector, v.Algorithm, v.Canonicalization)
			var extra []string
			if v.Identifier != "" && v.Identifier != "@"+v.Domain {
				extra = append(extra, "i="+v.Identifier)
			}
			switch {
			case v.KeyBits > 0 && strings.HasPrefix(v.Algorithm, "ed25519"):
				extra = append(extra, "Ed25519 key")
			case v.KeyBits > 0:
				extra = append(extra, fmt.Sprintf("RSA %d-bit key", v.KeyBits))
			}
			if v.Testing {
				extra = append(extra, "testing (t=y)")
			}
			if !v.Signed.IsZero() {
				extra = append(extra, "signed "+v.Signed.Format("2006-01-02 15:04Z"))
			}
			if !v.Expires.IsZero() {
				extra = append(extra, "expires "+v.Expires.Format("2006-01-02 15:04Z"))
			}
			if v.BodyLength >= 0 {
				extra = append(extra, fmt.Sprintf("l=%d", v.BodyLength))
			}
			if len(extra) > 0 {
				fmt.Fprintf(w, "  %s\n", st.Dim.Render(strings.Join(extra, ", ")))
			}
			if len(v.HeaderKeys) > 0 {
				for i, line := range cmdutil.Wrap(strings.Join(v.HeaderKeys, ":"), cmdutil.Width-18) {
					label := "signed headers:"
					if i > 0 {
						label = "               "
					}
					fmt.Fprintf(w, "  %s %s\n", st.Dim.Render(label), line)
				}
			}
			if len(v.HeaderKeys) == 0 {
				fmt.Fprintf(w, "  %s\n", st.Dim.Render("signed headers: none"))
			}
			if v.Code != "" {
				fmt.Fprintf(w, "  %s\n", st.Dim.Render(v.Code))
			}
			if v.Reason != "" {
				for _, line := range cmdutil.Wrap(v.Reason, cmdutil.Width-4) {
					fmt.Fprintf(w, "  %s\n", line)
				}
			}
			fmt.Fprintln(w)
		}
		if len(vs) == 0 || hasInfoOrWarn(rep.Findings) {
			st.WriteFindings(w, rep.Findings)
			fmt.Fprintln(w)
		}
		st.WriteSummary(w, rep)
		return nil
	})
}

func hasInfoOrWarn(fs []report.Finding) bool {
	for _, f := range fs {
		if f.Severity != report.SeverityError {
			return true
		}
	}
	return false
}
