package relay

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/viper"

	"github.com/relayctl/relayctl/pkg/delivery"
	"github.com/relayctl/relayctl/pkg/dkim"
	"github.com/relayctl/relayctl/pkg/smtpd"
)

// DefaultListen is where `relayctl serve` listens with no configuration.
const DefaultListen = "127.0.0.1:2525"

// DefaultShutdownTimeout bounds how long a graceful stop waits for SMTP
// transactions in progress.
const DefaultShutdownTimeout = 30 * time.Second

// Config is everything the relay needs. LoadConfig fills it from the
// `serve:` section of the configuration; commands override fields from
// flags; tests build it directly.
type Config struct {
	Hostname string
	// Spool is the queue directory.
	Spool string
	// NoFsync turns off fsync in the queue (benchmarks of the disk only;
	// a crash may then lose accepted mail).
	NoFsync bool

	Listeners []smtpd.Listener
	// SMTP holds users, trusted networks, limits and DKIM keys (with
	// their signers loaded; see DKIMKeys).
	SMTP smtpd.Config
	// DKIMKeys are the configured keys; LoadConfig and Reload load the
	// key files into SMTP.DKIM.
	DKIMKeys []DKIMKey

	// Delivery configures the delivery engine; Hostname and Resolver
	// are filled in by New when empty.
	Delivery delivery.Config
	// DeliveryLog is the path of the JSON-lines delivery log ("" none).
	DeliveryLog string

	ShutdownTimeout time.Duration

	// Hooks let other parts of relayctl plug into the running relay.
	Hooks Hooks
}

// DKIMKey is one `serve.dkim` entry.
type DKIMKey struct {
	Domain     string        `mapstructure:"domain"`
	Selector   string        `mapstructure:"selector"`
	KeyFile    string        `mapstructure:"key_file"`
	Canon      string        `mapstructure:"canonicalization"` // "relaxed/relaxed" (default), "simple/simple", …
	Headers    []string      `mapstructure:"headers"`
	Expiration time.Duration `mapstructure:"expiration"`
}

// fileConfig mirrors the `serve:` section for viper.
type fileConfig struct {
	Hostname        string         `mapstructure:"hostname"`
	Spool           string         `mapstructure:"spool"`
	Fsync           *bool          `mapstructure:"fsync"`
	Listen          []listenEntry  `mapstructure:"listen"`
	InsecureAuth    bool           `mapstructure:"insecure_auth"`
	TrustedNetworks *[]string      `mapstructure:"trusted_networks"`
	Users           []userEntry    `mapstructure:"users"`
	Limits          limitsEntry    `mapstructure:"limits"`
	DKIM            []DKIMKey      `mapstructure:"dkim"`
	Delivery        deliveryEntry  `mapstructure:"delivery"`
	Routes          map[string]any `mapstructure:"routes"`
	ShutdownTimeout time.Duration  `mapstructure:"shutdown_timeout"`
}

type listenEntry struct {
	Addr     string `mapstructure:"addr"`
	Mode     string `mapstructure:"mode"`
	CertFile string `mapstructure:"cert_file"`
	KeyFile  string `mapstructure:"key_file"`
}

type userEntry struct {
	Name           string   `mapstructure:"name"`
	PasswordHash   string   `mapstructure:"password_hash"`
	AllowedSenders []string `mapstructure:"allowed_senders"`
}

type limitsEntry struct {
	MaxMessageBytes   int64         `mapstructure:"max_message_bytes"`
	MaxRecipients     int           `mapstructure:"max_recipients"`
	MaxBufferedBytes  int64         `mapstructure:"max_buffered_bytes"`
	MaxConnections    int           `mapstructure:"max_connections"`
	MaxConnsPerIP     int           `mapstructure:"max_connections_per_ip"`
	MaxAuthFailures   int           `mapstructure:"max_auth_failures"`
	AuthFailureDelay  time.Duration `mapstructure:"auth_failure_delay"`
	AuthFailureWindow time.Duration `mapstructure:"auth_failure_window"`
	ReadTimeout       time.Duration `mapstructure:"read_timeout"`
	WriteTimeout      time.Duration `mapstructure:"write_timeout"`
	DataTimeout       time.Duration `mapstructure:"data_timeout"`
}

type deliveryEntry struct {
	Port               int           `mapstructure:"port"`
	Concurrency        int           `mapstructure:"concurrency"`
	PerDomain          int           `mapstructure:"per_domain"`
	DelayNotify        time.Duration `mapstructure:"delay_notify"`
	RequireTLS         bool          `mapstructure:"require_tls"`
	InsecureSkipVerify bool          `mapstructure:"insecure_skip_verify"`
	DialTimeout        time.Duration `mapstructure:"dial_timeout"`
	CommandTimeout     time.Duration `mapstructure:"command_timeout"`
	DataTimeout        time.Duration `mapstructure:"data_timeout"`
	IdleTimeout        time.Duration `mapstructure:"idle_timeout"`
	Log                string        `mapstructure:"log"`
	Retry              struct {
		Initial  time.Duration `mapstructure:"initial"`
		Max      time.Duration `mapstructure:"max"`
		Lifetime time.Duration `mapstructure:"lifetime"`
		Jitter   *float64      `mapstructure:"jitter"`
	} `mapstructure:"retry"`
}

// DefaultTrustedNetworks may relay without AUTH when trusted_networks is
// not configured: the local host, like Postfix's default mynetworks.
var defaultTrustedNetworks = []string{"127.0.0.0/8", "::1/128"}

// LoadConfig reads the `serve:` section of v (config file and
// RELAYCTL_SERVE_* environment variables) into a Config with defaults
// applied and DKIM keys loaded. Errors name the offending key.
func LoadConfig(v *viper.Viper) (Config, error) {
	var fc fileConfig
	if sub := v.Get("serve"); sub != nil {
		if err := v.UnmarshalKey("serve", &fc); err != nil {
			return Config{}, fmt.Errorf("serve: %w", err)
		}
	}
	// Scalars may also come from the environment (RELAYCTL_SERVE_SPOOL…),
	// which UnmarshalKey does not see for keys absent from the file.
	if s := v.GetString("serve.spool"); s != "" {
		fc.Spool = s
	}
	if s := v.GetString("serve.hostname"); s != "" {
		fc.Hostname = s
	}

	cfg := Config{
		Hostname:        fc.Hostname,
		Spool:           fc.Spool,
		NoFsync:         fc.Fsync != nil && !*fc.Fsync,
		DeliveryLog:     fc.Delivery.Log,
		ShutdownTimeout: fc.ShutdownTimeout,
		DKIMKeys:        fc.DKIM,
	}
	for i, l := range fc.Listen {
		if l.Addr == "" {
			return Config{}, fmt.Errorf("serve.listen[%d]: addr is required", i)
		}
		cfg.Listeners = append(cfg.Listeners, smtpd.Listener{Addr: l.Addr, Mode: l.Mode, CertFile: l.CertFile, KeyFile: l.KeyFile})
	}

	smtp := smtpd.Config{
		InsecureAuth:      fc.InsecureAuth,
		MaxMessageBytes:   fc.Limits.MaxMessageBytes,
		MaxRecipients:     fc.Limits.MaxRecipients,
		MaxBufferedBytes:  fc.Limits.MaxBufferedBytes,
		MaxConns:          fc.Limits.MaxConnections,
		MaxConnsPerIP:     fc.Limits.MaxConnsPerIP,
		MaxAuthFailures:   fc.Limits.MaxAuthFailures,
		AuthFailureDelay:  fc.Limits.AuthFailureDelay,
		AuthFailureWindow: fc.Limits.AuthFailureWindow,
		ReadTimeout:       fc.Limits.ReadTimeout,
		WriteTimeout:      fc.Limits.WriteTimeout,
		DataTimeout:       fc.Limits.DataTimeout,
	}
	nets := defaultTrustedNetworks
	if fc.TrustedNetworks != nil {
		nets = *fc.TrustedNetworks
	}
	var err error
	if smtp.TrustedNetworks, err = ParseNetworks(nets); err != nil {
		return Config{}, fmt.Errorf("serve.trusted_networks: %w", err)
	}
	for i, u := range fc.Users {
		if u.Name == "" || u.PasswordHash == "" {
			return Config{}, fmt.Errorf("serve.users[%d]: name and password_hash are required", i)
		}
		smtp.Users = append(smtp.Users, smtpd.User{Name: u.Name, PasswordHash: u.PasswordHash, AllowedSenders: u.AllowedSenders})
	}
	cfg.SMTP = smtp

	d := delivery.Config{
		Port:               fc.Delivery.Port,
		Concurrency:        fc.Delivery.Concurrency,
		PerDomain:          fc.Delivery.PerDomain,
		DelayNotify:        fc.Delivery.DelayNotify,
		DataTimeout:        fc.Delivery.DataTimeout,
		IdleTimeout:        fc.Delivery.IdleTimeout,
		RequireTLS:         fc.Delivery.RequireTLS,
		InsecureSkipVerify: fc.Delivery.InsecureSkipVerify,
		DialTimeout:        fc.Delivery.DialTimeout,
		CommandTimeout:     fc.Delivery.CommandTimeout,
		Backoff:            delivery.DefaultBackoff(),
	}
	if r := fc.Delivery.Retry; r.Initial > 0 {
		d.Backoff.Initial = r.Initial
	}
	if r := fc.Delivery.Retry; r.Max > 0 {
		d.Backoff.Max = r.Max
	}
	if r := fc.Delivery.Retry; r.Lifetime > 0 {
		d.Backoff.Lifetime = r.Lifetime
	}
	if j := fc.Delivery.Retry.Jitter; j != nil {
		if *j < 0 || *j > 1 {
			return Config{}, fmt.Errorf("serve.delivery.retry.jitter: %v is not between 0 and 1", *j)
		}
		d.Backoff.Jitter = *j
	}
	if d.Port < 0 || d.Port > 65535 {
		return Config{}, fmt.Errorf("serve.delivery.port: %d is not a port", d.Port)
	}
	cfg.Delivery = d

	if err := cfg.parseRoutes(fc.Routes); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// parseRoutes accepts `domain: host:port` or `domain: {host: host:port,
// dkim: false, tls: require, username: u, password_file: f}`.
func (cfg *Config) parseRoutes(routes map[string]any) error {
	for domain, val := range routes {
		key := "serve.routes." + domain
		var host string
		sign := true
		var rs delivery.Route // TLS and AUTH settings of the long form
		str := func(k string, v any) (string, error) {
			s, ok := v.(string)
			if !ok {
				return "", fmt.Errorf("%s.%s: want a string", key, k)
			}
			return s, nil
		}
		switch r := val.(type) {
		case string:
			host = r
		case map[string]any:
			for k, v := range r {
				switch k {
				case "host":
					s, ok := v.(string)
					if !ok {
						return fmt.Errorf("%s.host: want host:port", key)
					}
					host = s
				case "dkim":
					b, ok := v.(bool)
					if !ok {
						return fmt.Errorf("%s.dkim: want true or false", key)
					}
					sign = b
				case "tls":
					s, err := str(k, v)
					if err != nil {
						return err
					}
					switch s {
					case delivery.TLSOpportunistic, delivery.TLSRequire, delivery.TLSImplicit, delivery.TLSNone:
						rs.TLS = s
					default:
						return fmt.Errorf("%s.tls: %q is not one of opportunistic, require, implicit, none", key, s)
					}
				case "username":
					s, err := str(k, v)
					if err != nil {
						return err
					}
					rs.Username = s
				case "password":
					s, err := str(k, v)
					if err != nil {
						return err
					}
					rs.Password = s
				case "password_file":
					s, err := str(k, v)
					if err != nil {
						return err
					}
					b, err := os.ReadFile(s)
					if err != nil {
						return fmt.Errorf("%s.password_file: %w", key, err)
					}
					rs.Password = strings.TrimRight(string(b), "\r\n")
				default:
					return fmt.Errorf("%s: unknown key %q (want host, dkim, tls, username, password, password_file)", key, k)
				}
			}
		default:
			return fmt.Errorf("%s: want host:port or {host, dkim}", key)
		}
		if err := cfg.AddRoute(domain, host, sign); err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		if (rs.Username == "") != (rs.Password == "") {
			return fmt.Errorf("%s: username and password go together", key)
		}
		if rs.TLS != "" || rs.Username != "" {
			rs.Addr = host
			if cfg.Delivery.RouteSettings == nil {
				cfg.Delivery.RouteSettings = make(map[string]delivery.Route)
			}
			cfg.Delivery.RouteSettings[strings.ToLower(strings.TrimSuffix(strings.TrimSpace(domain), "."))] = rs
		}
	}
	return nil
}

// AddRoute sends mail for domain ("*" for every domain) to host:port
// instead of its MX; sign=false leaves mail that only goes there unsigned.
func (cfg *Config) AddRoute(domain, hostport string, sign bool) error {
	domain = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(domain), "."))
	if domain == "" {
		return errors.New("empty route domain")
	}
	if _, port, err := net.SplitHostPort(hostport); err != nil || port == "" {
		return fmt.Errorf("route %q: want host:port", hostport)
	}
	if cfg.Delivery.Routes == nil {
		cfg.Delivery.Routes = make(map[string]string)
	}
	cfg.Delivery.Routes[domain] = hostport
	if !sign {
		cfg.SMTP.UnsignedDomains = append(cfg.SMTP.UnsignedDomains, domain)
	}
	return nil
}

// ParseNetworks parses CIDRs; a bare IP is a single-host network.
func ParseNetworks(list []string) ([]*net.IPNet, error) {
	var out []*net.IPNet
	for _, s := range list {
		s = strings.TrimSpace(s)
		if !strings.Contains(s, "/") {
			ip := net.ParseIP(s)
			if ip == nil {
				return nil, fmt.Errorf("%q is not a CIDR or IP address", s)
			}
			bits := 128
			if ip.To4() != nil {
				ip, bits = ip.To4(), 32
			}
			out = append(out, &net.IPNet{IP: ip, Mask: net.CIDRMask(bits, bits)})
			continue
		}
		_, n, err := net.ParseCIDR(s)
		if err != nil {
			return nil, fmt.Errorf("%q is not a CIDR: %w", s, err)
		}
		out = append(out, n)
	}
	return out, nil
}

// ParseListen parses a --listen value: "host:port" (plain),
// "starttls://host:port" or "tls://host:port".
func ParseListen(s string) (smtpd.Listener, error) {
	mode, addr := smtpd.ModePlain, s
	if m, a, ok := strings.Cut(s, "://"); ok {
		mode, addr = m, a
	}
	switch mode {
	case smtpd.ModePlain, smtpd.ModeStartTLS, smtpd.ModeTLS:
	default:
		return smtpd.Listener{}, fmt.Errorf("listen %q: unknown mode %q (want plain, starttls or tls)", s, mode)
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return smtpd.Listener{}, fmt.Errorf("listen %q: %w", s, err)
	}
	return smtpd.Listener{Addr: addr, Mode: mode}, nil
}

// DefaultSpool is $XDG_STATE_HOME/relayctl/spool (or
// ~/.local/state/relayctl/spool).
func DefaultSpool() (string, error) {
	dir := os.Getenv("XDG_STATE_HOME")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("spool: no $XDG_STATE_HOME and no home directory: %w", err)
		}
		dir = filepath.Join(home, ".local", "state")
	}
	return filepath.Join(dir, "relayctl", "spool"), nil
}

// loadDKIM reads the key files into SMTP.DKIM.
func (cfg *Config) loadDKIM() error {
	cfg.SMTP.DKIM = nil
	for i, k := range cfg.DKIMKeys {
		key := fmt.Sprintf("serve.dkim[%d]", i)
		if k.Domain == "" || k.Selector == "" || k.KeyFile == "" {
			return fmt.Errorf("%s: domain, selector and key_file are required", key)
		}
		signer, err := dkim.LoadPrivateKey(k.KeyFile)
		if err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		o := dkim.SignOptions{Domain: k.Domain, Selector: k.Selector, Signer: signer, Headers: k.Headers, Expiration: k.Expiration}
		if k.Canon != "" {
			if o.HeaderCanon, o.BodyCanon, err = dkim.ParseCanon(k.Canon); err != nil {
				return fmt.Errorf("%s.canonicalization: %w", key, err)
			}
		}
		cfg.SMTP.DKIM = append(cfg.SMTP.DKIM, o)
	}
	return nil
}
