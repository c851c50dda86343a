// Package send holds `relayctl send` and `relayctl sendmail`: submitting
// a message to the relay (or, with --direct, straight to the recipients'
// MX hosts).
package send

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/relayctl/relayctl/cmd/cmdutil"
	"github.com/relayctl/relayctl/pkg/relay"
	"github.com/relayctl/relayctl/pkg/submit"
)

// Configuration keys (config file `send:` section, RELAYCTL_SEND_*).
const (
	KeyServer             = "send.server"
	KeyUser               = "send.user"
	KeyPasswordFile       = "send.password_file"
	KeyTLS                = "send.tls"
	KeyRequireTLS         = "send.require_tls"
	KeyInsecureSkipVerify = "send.insecure_skip_verify"
	KeyHello              = "send.hello"
	KeyFrom               = "send.from"
	// KeyPassword is read from RELAYCTL_PASSWORD only by convention; it is
	// never a flag.
	KeyPassword = "password"
)

var errNoPassword = errors.New("no password")

// DefaultServer is where `relayctl serve` listens by default.
const DefaultServer = relay.DefaultListen

// RelayFlags are the flags that say where a message is submitted.
type RelayFlags struct {
	Server, User, PasswordFile, Hello string
	TLS, RequireTLS, Insecure         bool
	fs                                *pflag.FlagSet
}

// Bind registers the flags on fs.
func (r *RelayFlags) Bind(fs *pflag.FlagSet) {
	r.fs = fs
	fs.StringVar(&r.Server, "server", "", "relay to submit to, host:port (config send.server; default: the first serve.listen address, else "+DefaultServer+")")
	fs.StringVar(&r.User, "user", "", "SMTP AUTH user (config send.user)")
	fs.StringVar(&r.PasswordFile, "password-file", "", "file holding the AUTH password (or RELAYCTL_PASSWORD; config send.password_file)")
	fs.BoolVar(&r.TLS, "tls", false, "implicit TLS from the first byte (port 465) instead of STARTTLS")
	fs.BoolVar(&r.RequireTLS, "require-tls", false, "refuse to send when the server does not offer STARTTLS")
	fs.BoolVar(&r.Insecure, "insecure-skip-verify", false, "do not verify the server's certificate (labs only)")
	fs.StringVar(&r.Hello, "hello", "", "EHLO name (default: this host's name)")
}

// Options resolves flags, config and environment into submit.Options.
func (r *RelayFlags) Options(f *cmdutil.Factory) (submit.Options, error) {
	str := func(flag, key string, v string) string {
		if r.fs != nil && r.fs.Changed(flag) {
			return v
		}
		if c := f.Config.GetString(key); c != "" {
			return c
		}
		return v
	}
	boolean := func(flag, key string, v bool) bool {
		if r.fs != nil && r.fs.Changed(flag) {
			return v
		}
		return v || f.Config.GetBool(key)
	}
	o := submit.Options{
		Addr:               str("server", KeyServer, r.Server),
		ImplicitTLS:        boolean("tls", KeyTLS, r.TLS),
		RequireTLS:         boolean("require-tls", KeyRequireTLS, r.RequireTLS),
		InsecureSkipVerify: boolean("insecure-skip-verify", KeyInsecureSkipVerify, r.Insecure),
		Username:           str("user", KeyUser, r.User),
		Hello:              str("hello", KeyHello, r.Hello),
		Timeout:            30 * time.Second,
	}
	if o.Addr == "" {
		o.Addr = DefaultServer
		// the local relay's own first listener, when configured
		if ls, ok := f.Config.Get("serve.listen").([]any); ok && len(ls) > 0 {
			if m, ok := ls[0].(map[string]any); ok {
				if a, ok := m["addr"].(string); ok && a != "" {
					o.Addr = a
					if mode, _ := m["mode"].(string); mode == "tls" && !(r.fs != nil && r.fs.Changed("tls")) {
						o.ImplicitTLS = true
					}
				}
			}
		}
		if h, p, err := net.SplitHostPort(o.Addr); err == nil && (h == "" || h == "0.0.0.0" || h == "::") {
			o.Addr = net.JoinHostPort("127.0.0.1", p) // a wildcard listener is reached on loopback
		}
	}
	if !strings.Contains(o.Addr, ":") {
		o.Addr += ":587"
	}
	if pf := str("password-file", KeyPasswordFile, r.PasswordFile); pf != "" {
		b, err := os.ReadFile(pf)
		if err != nil {
			return o, cmdutil.Usagef("--password-file: %v", err)
		}
		o.Password = strings.TrimRight(string(b), "\r\n")
	} else {
		o.Password = f.Config.GetString(KeyPassword)
	}
	if o.Password != "" && o.Username == "" {
		return o, cmdutil.Usagef("a password is set but no --user")
	}
	if o.Username != "" && o.Password == "" {
		return o, &cmdutil.UsageError{Err: fmt.Errorf("%w: --user %s needs one: --password-file FILE or RELAYCTL_PASSWORD", errNoPassword, o.Username)}
	}
	return o, nil
}

// describe renders "host:port (TLS 1.3, AUTH PLAIN)".
func describe(res *submit.Result) string {
	var attrs []string
	if res.TLS {
		attrs = append(attrs, res.TLSVersion)
	} else {
		attrs = append(attrs, "no TLS")
	}
	if res.Auth != "" {
		attrs = append(attrs, "AUTH "+res.Auth)
	}
	return fmt.Sprintf("%s (%s)", res.Server, strings.Join(attrs, ", "))
}
