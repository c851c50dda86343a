// Package serve holds `relayctl serve`: the relay (submission server,
// durable queue, MX delivery) and its helper `serve hash-password`.
package serve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/relayctl/relayctl/cmd/cmdutil"
	"github.com/relayctl/relayctl/cmd/operate"
	"github.com/relayctl/relayctl/pkg/relay"
	"github.com/relayctl/relayctl/pkg/smtpd"
)

// Options of `relayctl serve`.
type Options struct {
	F *cmdutil.Factory

	Listen          []string
	CertFile        string
	KeyFile         string
	Spool           string
	Hostname        string
	InsecureAuth    bool
	TrustedNetworks []string
	DeliveryPort    int
	Routes          []string
	DeliveryLog     string
	MaxMessageBytes int64
	LogLevel        string

	flags *pflag.FlagSet
	// Hooks are passed to the relay (the admin socket, metrics,
	// suppression and webhooks register here).
	Hooks relay.Hooks
	// Ready is called once the relay is listening (tests use it).
	Ready func(*relay.Relay)
	// Reload delivers reload requests; nil means the process's SIGHUP.
	Reload <-chan struct{}
}

// NewCmdServe is `relayctl serve`. runF replaces the run function in tests.
func NewCmdServe(f *cmdutil.Factory, runF func(*Options) error) *cobra.Command {
	o := &Options{F: f}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the relay: accept, queue on disk, deliver to MX hosts",
		Long: `Run relayctl's relay. Applications submit mail over SMTP (AUTH PLAIN/LOGIN
against bcrypt hashes, or from trusted networks); every message is on disk and
fsync'd before it is answered 250, then delivered to each recipient's MX host
with retries, bounces (DSN) and a JSON-lines delivery log.

With no configuration it listens on 127.0.0.1:2525, trusts only the local
host, keeps its spool in $XDG_STATE_HOME/relayctl/spool and uses the system
hostname. Everything is configurable in the serve: section of the config file
(see docs/serve.md); the flags below override the main knobs.

--listen takes host:port (plain SMTP), starttls://host:port (587 style) or
tls://host:port (465 style, implicit TLS); TLS listeners use --cert/--key.
AUTH is refused on a plain non-loopback listener unless --insecure-auth.

Signals: SIGTERM/SIGINT stop gracefully (no new connections, transactions in
progress finish, deliveries in flight stay queued); SIGHUP reloads users,
trusted networks, limits, DKIM keys and certificates from the config file.

Exit codes: 0 stopped cleanly, 2 invalid configuration, 3 could not start
(address in use, spool not writable) or failed while running.`,
		Example: `  relayctl serve
  relayctl serve --listen starttls://0.0.0.0:587 \
      --cert /etc/relayctl/tls.crt --key /etc/relayctl/tls.key
  relayctl serve --route '*=smarthost.example.net:587' \
      --delivery-log /var/log/relayctl/delivery.jsonl
  # lab: test DNS server, MX hosts on a loopback port
  relayctl serve --resolver 127.0.0.1:5353 --delivery-port 2526`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.flags = cmd.Flags()
			if runF != nil {
				return runF(o)
			}
			return serveRun(cmd.Context(), o)
		},
	}
	fs := cmd.Flags()
	fs.StringArrayVar(&o.Listen, "listen", nil, "[starttls:// or tls://]ADDR (repeatable)")
	fs.StringVar(&o.CertFile, "cert", "", "TLS certificate (PEM) for TLS listeners")
	fs.StringVar(&o.KeyFile, "key", "", "TLS private key (PEM) for --cert")
	fs.StringVar(&o.Spool, "spool", "", "queue directory (default: XDG state dir)")
	fs.StringVar(&o.Hostname, "hostname", "", "greeting and EHLO name (default: system)")
	fs.BoolVar(&o.InsecureAuth, "insecure-auth", false, "allow AUTH without TLS from the network")
	fs.StringArrayVar(&o.TrustedNetworks, "trusted-network", nil, "CIDR relaying without AUTH (repeatable)")
	fs.IntVar(&o.DeliveryPort, "delivery-port", 0, "port on MX hosts (default 25; labs)")
	fs.StringArrayVar(&o.Routes, "route", nil, "DOMAIN=HOST:PORT, * for all (repeatable)")
	fs.StringVar(&o.DeliveryLog, "delivery-log", "", "JSON-lines log of delivery attempts")
	fs.Int64Var(&o.MaxMessageBytes, "max-message-size", 0, "max message bytes (default 26214400)")
	fs.StringVar(&o.LogLevel, "log-level", "info", "debug|info|warn|error")

	cmd.AddCommand(NewCmdHashPassword(f, nil))
	return cmd
}

// config builds the relay configuration: the serve: section, then flags.
func (o *Options) config() (relay.Config, error) {
	cfg, err := relay.LoadConfig(o.F.Config)
	if err != nil {
		return relay.Config{}, cmdutil.Usagef("%v", err)
	}
	changed := func(name string) bool { return o.flags != nil && o.flags.Changed(name) }
	if len(o.Listen) > 0 {
		cfg.Listeners = nil
		for _, s := range o.Listen {
			l, err := relay.ParseListen(s)
			if err != nil {
				return relay.Config{}, cmdutil.Usagef("--listen: %v", err)
			}
			cfg.Listeners = append(cfg.Listeners, l)
		}
	}
	if (o.CertFile == "") != (o.KeyFile == "") {
		return relay.Config{}, cmdutil.Usagef("--cert and --key go together")
	}
	for i, l := range cfg.Listeners {
		if l.Mode != smtpd.ModePlain && l.Mode != "" && l.CertFile == "" && o.CertFile != "" {
			cfg.Listeners[i].CertFile, cfg.Listeners[i].KeyFile = o.CertFile, o.KeyFile
		}
	}
	if o.Spool != "" {
		cfg.Spool = o.Spool
	}
	if o.Hostname != "" {
		cfg.Hostname = o.Hostname
	}
	if changed("insecure-auth") {
		cfg.SMTP.InsecureAuth = o.InsecureAuth
	}
	if len(o.TrustedNetworks) > 0 {
		if cfg.SMTP.TrustedNetworks, err = relay.ParseNetworks(o.TrustedNetworks); err != nil {
			return relay.Config{}, cmdutil.Usagef("--trusted-network: %v", err)
		}
	}
	if changed("delivery-port") {
		if o.DeliveryPort <= 0 || o.DeliveryPort > 65535 {
			return relay.Config{}, cmdutil.Usagef("--delivery-port: %d is not a port", o.DeliveryPort)
		}
		cfg.Delivery.Port = o.DeliveryPort
	}
	for _, r := range o.Routes {
		domain, host, ok := strings.Cut(r, "=")
		if !ok {
			return relay.Config{}, cmdutil.Usagef("--route %q: want DOMAIN=HOST:PORT", r)
		}
		if err := cfg.AddRoute(domain, host, true); err != nil {
			return relay.Config{}, cmdutil.Usagef("--route: %v", err)
		}
	}
	if o.DeliveryLog != "" {
		cfg.DeliveryLog = o.DeliveryLog
	}
	if changed("max-message-size") {
		if o.MaxMessageBytes <= 0 {
			return relay.Config{}, cmdutil.Usagef("--max-message-size: must be positive")
		}
		cfg.SMTP.MaxMessageBytes = o.MaxMessageBytes
	}
	cfg.Hooks = o.Hooks
	return cfg, nil
}

func (o *Options) logger() (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.LogLevel)); err != nil {
		return nil, cmdutil.Usagef("--log-level: %q is not debug, info, warn or error", o.LogLevel)
	}
	hopts := &slog.HandlerOptions{Level: level}
	if o.F.JSON() {
		return slog.New(slog.NewJSONHandler(o.F.IO.ErrOut, hopts)), nil
	}
	return slog.New(slog.NewTextHandler(o.F.IO.ErrOut, hopts)), nil
}

func serveRun(ctx context.Context, o *Options) error {
	if ctx == nil {
		ctx = context.Background()
	}
	log, err := o.logger()
	if err != nil {
		return err
	}
	cfg, err := o.config()
	if err != nil {
		return err
	}
	// Admin socket, suppression list, metrics, webhooks (cmd/operate).
	if _, err := operate.Setup(o.F, &cfg, log); err != nil {
		return err
	}
	res, err := o.F.Resolver()
	if err != nil {
		return err
	}
	cfg.Delivery.Resolver = res

	r, err := relay.New(cfg, log)
	if err != nil {
		var ce *relay.ConfigError
		if errors.As(err, &ce) {
			return &cmdutil.UsageError{Err: err}
		}
		return &cmdutil.IncompleteError{Err: err}
	}
	for i, a := range r.Addrs() {
		fmt.Fprintf(o.F.IO.ErrOut, "relayctl serve: listening on %s (%s)\n", a, r.Config().Listeners[i].Mode)
	}

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	reload := o.Reload
	if reload == nil {
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
		ch := make(chan struct{})
		go func() {
			for {
				select {
				case <-hup:
					ch <- struct{}{}
				case <-ctx.Done():
					return
				}
			}
		}()
		reload = ch
	}
	go func() {
		for {
			select {
			case <-reload:
				o.reload(r, log)
			case <-ctx.Done():
				return
			}
		}
	}()
	if o.Ready != nil {
		o.Ready(r)
	}
	if err := r.Run(ctx); err != nil {
		return &cmdutil.IncompleteError{Err: err}
	}
	return nil
}

// reload re-reads the config file and applies what can change live.
func (o *Options) reload(r *relay.Relay, log *slog.Logger) {
	if o.F.Config.ConfigFileUsed() != "" {
		if err := o.F.Config.ReadInConfig(); err != nil {
			log.Error("reload: reading config file failed; keeping the running configuration", "err", err)
			return
		}
	}
	cfg, err := o.config()
	if err == nil {
		err = r.Reload(cfg)
	}
	if err != nil {
		log.Error("reload failed; keeping the running configuration", "err", err)
	}
}
