package dkim

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/relayctl/relayctl/cmd/cmdutil"
	"github.com/relayctl/relayctl/pkg/dkim"
	"github.com/relayctl/relayctl/pkg/report"
)

// SignOptions are the inputs of `relayctl dkim sign`.
type SignOptions struct {
	Key, Domain, Selector string
	Identifier            string
	Canon                 string
	Headers               []string
	Expire                time.Duration
	File                  string // "-" for stdin
}

// SignResult is the JSON result of sign.
type SignResult struct {
	Domain        string `json:"domain"`
	Selector      string `json:"selector"`
	Signature     string `json:"signature"`
	CRLFConverted bool   `json:"crlf_converted"`
	Message       string `json:"message"`
}

// NewCmdSign is `relayctl dkim sign`.
func NewCmdSign(f *cmdutil.Factory, runF func(*SignOptions) error) *cobra.Command {
	opts := &SignOptions{}
	cmd := &cobra.Command{
		Use:   "sign --key FILE --domain DOMAIN --selector SELECTOR [FILE|-]",
		Short: "Sign a message and print it with its DKIM-Signature",
		Long: `Sign a message (from FILE, or stdin when FILE is "-" or absent) and write
the signed message to stdout.

Canonicalization is relaxed/relaxed unless --canon says otherwise
("simple", "relaxed/simple", …). The signed header fields are, by default,
those of From, Reply-To, Sender, Subject, Date, To, Cc, Message-ID,
In-Reply-To, References, MIME-Version, Content-Type,
Content-Transfer-Encoding, List-Id, List-Unsubscribe and
List-Unsubscribe-Post present in the message, with From oversigned (listed
once more than it occurs, so a From added later breaks the signature).
--headers replaces that list and is used exactly as given.

Input with bare LF line endings is converted to CRLF before signing (a note
says so on stderr): the signature covers, and stdout carries, the CRLF form.
A message without a blank line after its header gets one (an empty body).

With --json, the signed message is in the result's "message" field.`,
		Example: `  relayctl dkim sign --key s2026.example.com.pem --domain example.com --selector s2026 msg.eml > signed.eml
  cat msg.eml | relayctl dkim sign --key k.pem --domain example.com --selector s1 --canon simple/simple
  relayctl dkim sign --key k.pem --domain example.com --selector s1 --headers From,To,Subject,Date msg.eml`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := requireFlags(cmd, "key", "domain", "selector"); err != nil {
				return err
			}
			opts.File = "-"
			if len(args) == 1 {
				opts.File = args[0]
			}
			if runF != nil {
				return runF(opts)
			}
			return signRun(f, opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.Key, "key", "", "private key file (PEM, PKCS#8 or PKCS#1)")
	fl.StringVar(&opts.Domain, "domain", "", "signing domain (d=)")
	fl.StringVar(&opts.Selector, "selector", "", "selector (s=)")
	fl.StringVar(&opts.Identifier, "identifier", "", "i= (AUID): an address or @domain in --domain or a subdomain (default: none, meaning @DOMAIN)")
	fl.StringVar(&opts.Canon, "canon", "relaxed/relaxed", "canonicalization header/body: relaxed or simple")
	fl.StringSliceVar(&opts.Headers, "headers", nil, "header fields to sign, comma-separated, in order (must include From)")
	fl.DurationVar(&opts.Expire, "expire", 0, "add x= this long after signing (e.g. 168h); 0 for none")
	return cmd
}

func readInput(f *cmdutil.Factory, file string) ([]byte, error) {
	if file == "-" {
		b, err := io.ReadAll(f.IO.In)
		if err != nil {
			return nil, &cmdutil.IncompleteError{Err: fmt.Errorf("reading stdin: %w", err)}
		}
		return b, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, cmdutil.Usagef("%v", err)
	}
	return b, nil
}

func signRun(f *cmdutil.Factory, opts *SignOptions) error {
	domain, err := signingDomain(opts.Domain, opts.Selector)
	if err != nil {
		return err
	}
	hc, bc, err := dkim.ParseCanon(opts.Canon)
	if err != nil {
		return cmdutil.Usagef("--canon: %v", err)
	}
	if opts.Expire < 0 {
		return cmdutil.Usagef("--expire must not be negative")
	}
	key, err := dkim.LoadPrivateKey(opts.Key)
	if err != nil {
		return cmdutil.Usagef("--key: %v", err)
	}
	raw, err := readInput(f, opts.File)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return cmdutil.Usagef("empty message")
	}
	msg, converted := dkim.Normalize(raw)
	so := dkim.SignOptions{Domain: domain, Selector: opts.Selector, Identifier: opts.Identifier, Signer: key,
		HeaderCanon: hc, BodyCanon: bc, Headers: opts.Headers, Expiration: opts.Expire, Now: f.Now}
	sig, err := dkim.SignatureHeader(msg, so)
	if err != nil { // no From, a bad --headers list, a key too short: all the input's fault
		return cmdutil.Usagef("%v", err)
	}
	if converted {
		fmt.Fprintln(f.IO.ErrOut, "relayctl: note: input had LF line endings; converted to CRLF before signing (output is CRLF)")
	}
	if f.JSON() {
		rep := report.New("dkim sign", domain)
		if converted {
			rep.Info("dkim.crlf-converted", "input had LF line endings; converted to CRLF before signing")
		}
		rep.Result = SignResult{Domain: domain, Selector: opts.Selector, Signature: sig, CRLFConverted: converted, Message: sig + string(msg)}
		return f.Output(rep, nil)
	}
	if _, err := io.WriteString(f.IO.Out, sig); err != nil {
		return err
	}
	_, err = f.IO.Out.Write(msg)
	return err
}
