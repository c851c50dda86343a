package send

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"os"
	"os/user"
	"strings"

	"github.com/spf13/cobra"

	"github.com/relayctl/relayctl/cmd/cmdutil"
	"github.com/relayctl/relayctl/pkg/compose"
	"github.com/relayctl/relayctl/pkg/submit"
)

// sysexits(3) codes that sendmail callers (cron, PHP, mail(1)) act on.
const (
	ExOK          = 0
	ExUsage       = 64 // bad command line
	ExDataErr     = 65 // the message is malformed
	ExNoUser      = 67 // a recipient does not exist (5.1.x)
	ExUnavailable = 69 // refused permanently
	ExSoftware    = 70
	ExTempFail    = 75 // relay down or 4xx: try again later
	ExNoPerm      = 77 // authentication refused
	ExConfig      = 78 // relayctl's configuration is wrong
)

// SendmailOptions are the sendmail(8) options apps and cron use.
type SendmailOptions struct {
	F *cmdutil.Factory

	Extract    bool   // -t
	IgnoreDots bool   // -i, -oi
	From       string // -f / -r
	FullName   string // -F
	Rcpts      []string
	Verbose    bool // -v
}

const sendmailHelp = `Read a message on stdin and submit it to the relay, like sendmail(8).

Options (the ones applications and cron use):
  -t          take recipients from the To, Cc and Bcc fields (Bcc is removed);
              recipients given as arguments are added
  -f ADDR     envelope sender (also -r ADDR, -fADDR)
  -F NAME     full name for the From field when the message has none
  -i, -oi     a line with a single dot does not end the message
  -v          print the relay's reply for each recipient on stderr
  -o*, -B, -N, -R, -V, -bm   accepted for compatibility and ignored
  --          end of options

The relay, user and password come from the config file (send.server,
send.user, send.password_file) or RELAYCTL_SEND_SERVER, RELAYCTL_SEND_USER,
RELAYCTL_PASSWORD. Invoked through a link named "sendmail", relayctl behaves
as this command.

Exit codes (sysexits): 0 sent, 64 bad usage, 65 bad message, 67 unknown
recipient, 69 refused, 75 relay unreachable or temporary refusal (cron and
PHP retry later), 77 authentication refused, 78 configuration error.`

// NewCmdSendmail is `relayctl sendmail`.
func NewCmdSendmail(f *cmdutil.Factory, runF func(*SendmailOptions) error) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sendmail [flags] [recipient...]",
		Short: "sendmail(8)-compatible submission for apps and cron",
		Long:  sendmailHelp,
		Example: `  printf 'Subject: test\n\nhello\n' | relayctl sendmail -i ops@example.com
  php.ini:  sendmail_path = "/usr/local/bin/relayctl sendmail -t -i"
  ln -s /usr/local/bin/relayctl /usr/sbin/sendmail   # cron mails job output`,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			o, err := parseSendmailArgs(args)
			if errors.Is(err, errHelp) {
				return cmd.Help()
			}
			if err != nil {
				fmt.Fprintf(f.IO.ErrOut, "sendmail: %v\n", err)
				return &cmdutil.ExitError{Code: ExUsage}
			}
			o.F = f
			if runF != nil {
				return runF(o)
			}
			code := sendmailRun(cmd.Context(), o)
			if code != ExOK {
				return &cmdutil.ExitError{Code: code}
			}
			return nil
		},
	}
	return cmd
}

var errHelp = errors.New("help")

// parseSendmailArgs parses sendmail's single-dash options by hand: pflag
// would read "-oi" as "-o i".
func parseSendmailArgs(args []string) (*SendmailOptions, error) {
	o := &SendmailOptions{}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			o.Rcpts = append(o.Rcpts, args[i+1:]...)
			break
		}
		if a == "-h" || a == "--help" {
			return nil, errHelp
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			o.Rcpts = append(o.Rcpts, a)
			continue
		}
		// value of an option that takes an argument: attached or next
		val := func() (string, error) {
			if len(a) > 2 {
				return a[2:], nil
			}
			if i+1 >= len(args) {
				return "", fmt.Errorf("option %s needs a value", a)
			}
			i++
			return args[i], nil
		}
		var err error
		switch {
		case a == "-t":
			o.Extract = true
		case a == "-i" || a == "-oi" || a == "-oitrue":
			o.IgnoreDots = true
		case a == "-v":
			o.Verbose = true
		case a[1] == 'f' || a[1] == 'r':
			o.From, err = val()
		case a[1] == 'F':
			o.FullName, err = val()
		case a[1] == 'o': // -oem, -odb, -oQ… : delivery options of the real sendmail
		case a[1] == 'B' || a[1] == 'N' || a[1] == 'R' || a[1] == 'V' || a[1] == 'X' || a[1] == 'L' || a[1] == 'O':
			_, err = val()
		case a == "-bm" || a == "-U" || a == "-m" || a == "-n" || a == "-em" || a == "-ee":
		case strings.HasPrefix(a, "-b"):
			return nil, fmt.Errorf("mode %s is not supported: relayctl sendmail only submits messages (-bm); use `relayctl queue list` to see the queue", a)
		default:
			return nil, fmt.Errorf("unknown option %s (see relayctl sendmail --help)", a)
		}
		if err != nil {
			return nil, err
		}
	}
	if strings.ContainsAny(o.From+o.FullName, "\r\n") {
		return nil, fmt.Errorf("CR or LF in -f or -F")
	}
	return o, nil
}

// readSendmailInput reads stdin; without -i a line holding a single dot
// ends the message, as in sendmail.
func readSendmailInput(r io.Reader, ignoreDots bool) ([]byte, error) {
	if ignoreDots {
		return io.ReadAll(r)
	}
	var b bytes.Buffer
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadBytes('\n')
		if t := bytes.TrimRight(line, "\r\n"); string(t) == "." && len(line) > 0 && (len(line) == 1 || line[len(line)-1] == '\n') {
			return b.Bytes(), nil
		}
		b.Write(line)
		if err == io.EOF {
			return b.Bytes(), nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// sendmailRun returns a sysexits code; messages go to stderr.
func sendmailRun(ctx context.Context, o *SendmailOptions) int {
	f := o.F
	errf := func(code int, format string, args ...any) int {
		fmt.Fprintf(f.IO.ErrOut, "sendmail: "+format+"\n", args...)
		return code
	}
	data, err := readSendmailInput(f.IO.In, o.IgnoreDots)
	if err != nil {
		return errf(ExTempFail, "reading the message: %v", err)
	}
	msg, err := compose.ParseMessage(data)
	if err != nil {
		return errf(ExDataErr, "%v", err)
	}
	var rcpts []string
	for _, r := range o.Rcpts {
		list, err := mail.ParseAddressList(r)
		if err != nil {
			// bare local parts ("root") are what cron passes
			if strings.ContainsAny(r, " <>,\r\n") || r == "" {
				return errf(ExUsage, "recipient %q: %v", r, err)
			}
			rcpts = appendUnique(rcpts, r)
			continue
		}
		for _, a := range list {
			rcpts = appendUnique(rcpts, a.Address)
		}
	}
	if o.Extract {
		hdr, err := msg.Recipients()
		if err != nil {
			return errf(ExDataErr, "%v", err)
		}
		rcpts = appendUnique(rcpts, hdr...)
		msg.StripBcc()
	}
	if len(rcpts) == 0 {
		if o.Extract {
			return errf(ExDataErr, "no recipient addresses found in the message header")
		}
		return errf(ExUsage, "no recipients: give them as arguments or use -t")
	}
	from := o.From
	if from == "" {
		from = f.Config.GetString(KeyFrom)
	}
	if from == "" {
		if from, err = msg.From(); err != nil {
			return errf(ExDataErr, "%v", err)
		}
	}
	if from == "" {
		from = localSender()
	}
	fromField := from
	if o.FullName != "" {
		fromField = (&mail.Address{Name: o.FullName, Address: from}).String()
	}
	host := from[strings.LastIndexByte(from, '@')+1:]
	if err := msg.AddMissing(f.Now(), fromField, host); err != nil {
		return errf(ExDataErr, "%v", err)
	}
	sopts, err := (&RelayFlags{}).Options(f)
	if err != nil {
		return errf(ExConfig, "%v", err)
	}
	if ctx == nil {
		ctx = context.Background()
	}
	res, err := submit.Send(ctx, sopts, from, rcpts, msg.Bytes())
	var ce *submit.ConnError
	var re *submit.ReplyError
	switch {
	case err == nil:
	case errors.As(err, &ce):
		return errf(ExTempFail, "relay unreachable, try again later: %v", err)
	case errors.As(err, &re) && re.Temporary():
		return errf(ExTempFail, "%v", err)
	case errors.As(err, &re) && re.Command == "AUTH":
		return errf(ExNoPerm, "%v", err)
	case errors.As(err, &re):
		return errf(ExUnavailable, "%v", err)
	case errors.Is(err, submit.ErrPolicy):
		return errf(ExConfig, "%v", err)
	default:
		return errf(ExSoftware, "%v", err)
	}
	code := ExOK
	for _, r := range res.Recipients {
		if o.Verbose || !r.Accepted {
			fmt.Fprintf(f.IO.ErrOut, "sendmail: %s: %s\n", r.Address, r.Reply)
		}
		if r.Accepted {
			continue
		}
		c := ExUnavailable
		switch {
		case r.Reply.Temporary():
			c = ExTempFail
		case strings.HasPrefix(r.Reply.Enhanced, "5.1."):
			c = ExNoUser
		}
		// the most actionable code wins: temporary (retry) over permanent
		if code == ExOK || c == ExTempFail {
			code = c
		}
	}
	return code
}

// localSender is user@host for messages with no sender at all (cron).
func localSender() string {
	name := "root"
	if u, err := user.Current(); err == nil && u.Username != "" {
		name = u.Username
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	return name + "@" + host
}
