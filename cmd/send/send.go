package send

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/relayctl/relayctl/cmd/cmdutil"
	"github.com/relayctl/relayctl/pkg/compose"
	"github.com/relayctl/relayctl/pkg/delivery"
	"github.com/relayctl/relayctl/pkg/events"
	"github.com/relayctl/relayctl/pkg/report"
	"github.com/relayctl/relayctl/pkg/submit"
)

// Options of `relayctl send`.
type Options struct {
	F *cmdutil.Factory

	From, Subject, Body, BodyFile, HTMLFile, ReplyTo string
	To, Cc, Bcc, Attach, Headers                     []string
	EML                                              string
	ExtractRecipients                                bool
	Relay                                            RelayFlags
	// Direct delivers to the recipients' MX hosts instead of the relay.
	Direct       bool
	DeliveryPort int
}

// NewCmdSend is `relayctl send`. runF replaces the run function in tests.
func NewCmdSend(f *cmdutil.Factory, runF func(*Options) error) *cobra.Command {
	o := &Options{F: f}
	cmd := &cobra.Command{
		Use:   "send",
		Short: "Compose and submit a message to the relay",
		Long: `Compose a message from flags (or take a ready one with --eml) and submit it
to the relay over SMTP: STARTTLS when the server offers it (--tls for implicit
TLS), AUTH with --user and a password from --password-file or
RELAYCTL_PASSWORD (never on the command line).

The body comes from --body, --body-file, or stdin when neither is given and
stdin is not a terminal. --html adds an HTML alternative; --attach adds files
(MIME type from the extension, else sniffed). Non-ASCII headers are encoded
(RFC 2047). A CR or LF inside any field is refused (exit 2).

With --direct there is no relay: the message goes straight to each
recipient domain's MX hosts (RFC 5321 §5) with the relay's delivery engine,
STARTTLS when offered, one attempt, no queue, no retries.

Prints each recipient's outcome and the server's reply. Exit codes: 0 all
accepted, 1 a recipient or the message was refused, 2 bad input, 3 the server
could not be reached (or refused temporarily: try again later).`,
		Example: `  relayctl send --from app@example.com --to user@example.org \
      --subject "Your receipt" --body-file receipt.txt --attach receipt.pdf
  echo "disk almost full" | relayctl send --from cron@example.com --to ops@example.com --subject "df"
  relayctl send --eml message.eml -t --server relay.example.com:587 --user app --password-file /etc/relayctl/pass`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(o)
			}
			return sendRun(cmd.Context(), o)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&o.From, "from", "", "sender address, \"Name <addr>\" (config send.from)")
	fs.StringArrayVar(&o.To, "to", nil, "recipient (repeatable, or comma-separated)")
	fs.StringArrayVar(&o.Cc, "cc", nil, "copy recipient (repeatable)")
	fs.StringArrayVar(&o.Bcc, "bcc", nil, "blind copy recipient (repeatable; never written into the message)")
	fs.StringVar(&o.ReplyTo, "reply-to", "", "Reply-To address")
	fs.StringVar(&o.Subject, "subject", "", "subject (any language; encoded as needed)")
	fs.StringVar(&o.Body, "body", "", "plain-text body")
	fs.StringVar(&o.BodyFile, "body-file", "", "file holding the plain-text body")
	fs.StringVar(&o.HTMLFile, "html", "", "file holding an HTML body (sent as multipart/alternative with the text)")
	fs.StringArrayVar(&o.Attach, "attach", nil, "file to attach (repeatable)")
	fs.StringArrayVar(&o.Headers, "header", nil, "extra header field \"Name: value\" (repeatable)")
	fs.StringVar(&o.EML, "eml", "", "send a ready message from FILE (- for stdin) instead of composing one")
	fs.BoolVarP(&o.ExtractRecipients, "extract-recipients", "t", false, "with --eml: also send to the message's To, Cc and Bcc (Bcc is removed)")
	o.Relay.Bind(fs)
	fs.BoolVar(&o.Direct, "direct", false, "deliver now to the recipients' MX hosts with the relay's delivery engine (no relay, no queue, one attempt)")
	fs.IntVar(&o.DeliveryPort, "delivery-port", 25, "with --direct: port on the MX hosts (labs and tests)")
	return cmd
}

// Prepared is a message ready for the envelope.
type Prepared struct {
	From      string
	Rcpts     []string
	Data      []byte
	MessageID string
}

// prepare builds the message and envelope from the options.
func (o *Options) prepare() (*Prepared, error) {
	f := o.F
	from := o.From
	if from == "" {
		from = f.Config.GetString(KeyFrom)
	}
	if o.EML != "" {
		if o.Subject != "" || o.Body != "" || o.BodyFile != "" || o.HTMLFile != "" || len(o.Attach) > 0 || len(o.Headers) > 0 || o.ReplyTo != "" {
			return nil, cmdutil.Usagef("--eml sends a ready message: --subject, --body, --body-file, --html, --attach, --header and --reply-to cannot be combined with it")
		}
		var r io.Reader
		if o.EML == "-" {
			r = f.IO.In
		} else {
			fh, err := os.Open(o.EML)
			if err != nil {
				return nil, cmdutil.Usagef("--eml: %v", err)
			}
			defer fh.Close()
			r = fh
		}
		msg, err := compose.ReadMessage(r)
		if err != nil {
			return nil, inputErr(err)
		}
		_, rcpts, err := (&compose.Message{From: "x@x", To: o.To, Cc: o.Cc, Bcc: o.Bcc}).Envelope()
		if err != nil {
			return nil, inputErr(err)
		}
		if o.ExtractRecipients {
			hdr, err := msg.Recipients()
			if err != nil {
				return nil, inputErr(err)
			}
			rcpts = appendUnique(rcpts, hdr...)
			msg.StripBcc()
		}
		if len(rcpts) == 0 {
			return nil, cmdutil.Usagef("no recipients: give --to, or -t to take them from the message")
		}
		envFrom := ""
		if from != "" {
			list, err := compose.ParseAddresses("from", []string{from})
			if err != nil || len(list) != 1 {
				return nil, cmdutil.Usagef("--from %q: not one address", from)
			}
			envFrom = list[0].Address
		} else if envFrom, err = msg.From(); err != nil {
			return nil, inputErr(err)
		}
		if envFrom == "" {
			return nil, cmdutil.Usagef("no sender: give --from or a From field in the message")
		}
		host := envFrom[strings.LastIndexByte(envFrom, '@')+1:]
		if err := msg.AddMissing(f.Now(), from, host); err != nil {
			return nil, inputErr(err)
		}
		return &Prepared{From: envFrom, Rcpts: rcpts, Data: msg.Bytes(), MessageID: msg.Header.Get("Message-ID")}, nil
	}
	if o.ExtractRecipients {
		return nil, cmdutil.Usagef("-t takes the recipients from a ready message: use it with --eml")
	}
	if from == "" {
		return nil, cmdutil.Usagef("--from is required")
	}
	if len(o.To)+len(o.Cc)+len(o.Bcc) == 0 {
		return nil, cmdutil.Usagef("at least one --to, --cc or --bcc is required")
	}
	m := &compose.Message{From: from, To: o.To, Cc: o.Cc, Bcc: o.Bcc, ReplyTo: o.ReplyTo, Subject: o.Subject, Text: o.Body, Date: f.Now()}
	switch {
	case o.Body != "" && o.BodyFile != "":
		return nil, cmdutil.Usagef("--body and --body-file cannot both be given")
	case o.BodyFile != "":
		b, err := os.ReadFile(o.BodyFile)
		if err != nil {
			return nil, cmdutil.Usagef("--body-file: %v", err)
		}
		m.Text = string(b)
	case o.Body == "" && !f.IO.StdinTTY && f.IO.In != nil:
		b, err := io.ReadAll(f.IO.In)
		if err != nil {
			return nil, fmt.Errorf("read body from stdin: %w", err)
		}
		m.Text = string(b)
	}
	if o.HTMLFile != "" {
		b, err := os.ReadFile(o.HTMLFile)
		if err != nil {
			return nil, cmdutil.Usagef("--html: %v", err)
		}
		m.HTML = string(b)
	}
	for _, a := range o.Attach {
		b, err := os.ReadFile(a)
		if err != nil {
			return nil, cmdutil.Usagef("--attach: %v", err)
		}
		m.Attachments = append(m.Attachments, compose.Attachment{Filename: a, Data: b})
	}
	for _, h := range o.Headers {
		hd, err := compose.ParseHeader(h)
		if err != nil {
			return nil, inputErr(err)
		}
		m.Headers = append(m.Headers, hd)
	}
	data, err := m.Build()
	if err != nil {
		return nil, inputErr(err)
	}
	envFrom, rcpts, err := m.Envelope()
	if err != nil {
		return nil, inputErr(err)
	}
	p := &Prepared{From: envFrom, Rcpts: rcpts, Data: data}
	if e, err := compose.ParseMessage(data); err == nil {
		p.MessageID = e.Header.Get("Message-ID")
	}
	return p, nil
}

func appendUnique(list []string, add ...string) []string {
	for _, a := range add {
		if !slices.ContainsFunc(list, func(l string) bool { return strings.EqualFold(l, a) }) {
			list = append(list, a)
		}
	}
	return list
}

// inputErr turns compose's input errors into usage errors (exit 2).
func inputErr(err error) error {
	if errors.Is(err, compose.ErrInjection) || errors.Is(err, compose.ErrInvalid) {
		return &cmdutil.UsageError{Err: err}
	}
	return err
}

// Result is the --json result of send.
type Result struct {
	MessageID string `json:"message_id,omitempty"`
	From      string `json:"from"`
	*submit.Result
}

func sendRun(ctx context.Context, o *Options) error {
	f := o.F
	p, err := o.prepare()
	if err != nil {
		return err
	}
	if ctx == nil {
		ctx = context.Background()
	}
	if o.Direct {
		return o.direct(ctx, p)
	}
	sopts, err := o.Relay.Options(f)
	if err != nil {
		return err
	}
	res, err := submit.Send(ctx, sopts, p.From, p.Rcpts, p.Data)
	rep := report.New("send", strings.Join(p.Rcpts, ","))
	rep.Result = Result{MessageID: p.MessageID, From: p.From, Result: res}
	Findings(rep, res, err)
	if errors.Is(err, submit.ErrPolicy) {
		return &cmdutil.UsageError{Err: err}
	}
	return f.Output(rep, func(w io.Writer, st *cmdutil.Styles) error {
		WriteHuman(w, st, res, err)
		return nil
	})
}

// Findings adds the per-recipient outcome and any session error to rep.
//
//	send.accepted    info   the server took the message for a recipient
//	send.refused     error  a recipient (or the message) was refused
//	send.unreachable warning, report incomplete (exit 3): no answer, or a
//	                 temporary refusal of the whole session
func Findings(rep *report.Report, res *submit.Result, err error) {
	var ce *submit.ConnError
	var re *submit.ReplyError
	switch {
	case err == nil:
	case errors.As(err, &ce):
		rep.Warn("send.unreachable", "%v", err)
		rep.Incomplete = true
	case errors.As(err, &re) && re.Temporary():
		rep.Warn("send.unreachable", "%s: temporary refusal %s; try again later", re.Command, re.Reply)
		rep.Incomplete = true
	case errors.As(err, &re):
		rep.Error("send.refused", "%s refused: %s", re.Command, re.Reply)
		return
	default:
		rep.Error("send.refused", "%v", err)
		return
	}
	if err != nil {
		return
	}
	for _, r := range res.Recipients {
		if r.Accepted {
			rep.Info("send.accepted", "%s: %s", r.Address, r.Reply)
		} else {
			rep.Error("send.refused", "%s: %s", r.Address, r.Reply)
		}
	}
	if res.Data != nil && res.Refused() < len(res.Recipients) {
		rep.Info("send.accepted", "message: %s", res.Data)
	}
}

// WriteHuman prints one line per recipient and the server's final reply.
func WriteHuman(w io.Writer, st *cmdutil.Styles, res *submit.Result, err error) {
	if res != nil && (res.Data != nil || err == nil) {
		fmt.Fprintf(w, "%s %s\n", st.Bold.Render("relay"), describe(res))
	}
	if err != nil {
		fmt.Fprintf(w, "%s %v\n", st.Fail.Render("failed"), err)
		return
	}
	for _, r := range res.Recipients {
		mark := st.Pass.Render("accepted")
		if !r.Accepted {
			mark = st.Fail.Render("refused ")
		}
		line := fmt.Sprintf("%s %s", mark, r.Address)
		fmt.Fprintln(w, line)
		for _, l := range cmdutil.Wrap(r.Reply.String(), cmdutil.Width-11) {
			fmt.Fprintf(w, "%9s  %s\n", "", st.Dim.Render(l))
		}
	}
	if res.Data != nil && res.Refused() < len(res.Recipients) {
		fmt.Fprintf(w, "%s %s\n", st.Bold.Render("queued "), res.Data)
	}
}

// DirectResult is the --json result of send --direct.
type DirectResult struct {
	MessageID  string            `json:"message_id,omitempty"`
	From       string            `json:"from"`
	Recipients []delivery.Result `json:"recipients"`
}

// direct delivers p to the recipients' MX hosts, one attempt each.
//
//	send.accepted    info     the receiver took the message (2xx)
//	send.refused     error    the receiver refused it permanently (5xx, no MX, null MX)
//	send.unreachable warning  no answer, or a temporary refusal (4xx): report
//	                          incomplete (exit 3), try again later
func (o *Options) direct(ctx context.Context, p *Prepared) error {
	f := o.F
	if o.Relay.fs != nil {
		for _, name := range []string{"server", "user", "password-file", "tls"} {
			if o.Relay.fs.Changed(name) {
				return cmdutil.Usagef("--%s is for the relay; --direct delivers to the MX hosts", name)
			}
		}
	}
	if o.DeliveryPort <= 0 || o.DeliveryPort > 65535 {
		return cmdutil.Usagef("--delivery-port: %d is not a port", o.DeliveryPort)
	}
	res, err := f.Resolver()
	if err != nil {
		return err
	}
	sopts, err := o.Relay.Options(f)
	if err != nil && !errors.Is(err, errNoPassword) {
		return err
	}
	cfg := delivery.Config{
		Hostname:           sopts.Hello,
		Resolver:           res,
		Port:               o.DeliveryPort,
		RequireTLS:         sopts.RequireTLS,
		InsecureSkipVerify: sopts.InsecureSkipVerify,
		DialTimeout:        30 * time.Second,
		CommandTimeout:     2 * time.Minute,
	}
	results := delivery.DeliverNow(ctx, cfg, p.From, p.Rcpts, p.Data)
	rep := report.New("send", strings.Join(p.Rcpts, ","))
	rep.Result = DirectResult{MessageID: p.MessageID, From: p.From, Recipients: results}
	for _, r := range results {
		reply := strings.TrimSpace(r.Response)
		switch r.Outcome {
		case events.Delivered:
			rep.Info("send.accepted", "%s: %s (%s)", r.Recipient, reply, r.Host)
		case events.Bounced:
			rep.Error("send.refused", "%s: %s", r.Recipient, reply)
		default:
			rep.Warn("send.unreachable", "%s: %s; try again later", r.Recipient, reply)
			rep.Incomplete = true
		}
	}
	return f.Output(rep, func(w io.Writer, st *cmdutil.Styles) error {
		for _, r := range results {
			var mark string
			switch r.Outcome {
			case events.Delivered:
				mark = st.Pass.Render("delivered")
			case events.Bounced:
				mark = st.Fail.Render("refused  ")
			default:
				mark = st.Warn.Render("deferred ")
			}
			host := r.Host
			if host != "" {
				if r.TLS {
					host += " (TLS)"
				} else {
					host += " (no TLS)"
				}
			}
			fmt.Fprintf(w, "%s %s  %s\n", mark, r.Recipient, st.Dim.Render(host))
			for _, l := range cmdutil.Wrap(strings.TrimSpace(r.Response), cmdutil.Width-12) {
				fmt.Fprintf(w, "%10s  %s\n", "", st.Dim.Render(l))
			}
		}
		return nil
	})
}
