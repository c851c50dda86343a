package cmdutil

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/viper"

	"github.com/relayctl/relayctl/pkg/dnsclient"
	"github.com/relayctl/relayctl/pkg/report"
)

// Configuration keys shared by every command (flags, config file, and
// RELAYCTL_* environment variables).
const (
	KeyResolver = "resolver"
	KeyTimeout  = "timeout"
	KeyJSON     = "json"
	KeyNoColor  = "no-color"
	KeyStrict   = "strict"
)

// Factory carries the dependencies commands need. Tests build one with
// Test streams, a fresh viper and a fixed clock.
type Factory struct {
	IO     *IOStreams
	Config *viper.Viper
	Now    func() time.Time
	// ResolvConf is the file the default resolvers come from.
	ResolvConf string
	// Started is set once flag and argument parsing succeeded, so Main
	// can tell a usage error from a run-time one.
	Started bool
}

// NewFactory returns a factory for the real process.
func NewFactory() *Factory {
	return &Factory{IO: System(), Config: NewConfig(), Now: time.Now, ResolvConf: "/etc/resolv.conf"}
}

// NewTestFactory returns a factory with buffer streams; out and errOut
// receive what the command prints.
func NewTestFactory() (f *Factory, in, out, errOut *bytes.Buffer) {
	ios, i, o, e := Test()
	return &Factory{IO: ios, Config: NewConfig(), Now: time.Now, ResolvConf: "/etc/resolv.conf"}, i, o, e
}

// NewConfig returns a viper reading RELAYCTL_* environment variables
// ("no-color" is RELAYCTL_NO_COLOR, "serve.spool" RELAYCTL_SERVE_SPOOL).
func NewConfig() *viper.Viper {
	v := viper.New()
	v.SetEnvPrefix("RELAYCTL")
	v.SetEnvKeyReplacer(strings.NewReplacer("-", "_", ".", "_"))
	v.AutomaticEnv()
	v.SetDefault(KeyTimeout, 5*time.Second)
	return v
}

// DefaultConfigPath is $XDG_CONFIG_HOME/relayctl/config.yaml (or
// ~/.config/relayctl/config.yaml).
func DefaultConfigPath() string {
	dir := os.Getenv("XDG_CONFIG_HOME")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return ""
		}
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, "relayctl", "config.yaml")
}

// LoadConfigFile reads path into the configuration. An explicit path
// must exist; the default path is read only if present.
func (f *Factory) LoadConfigFile(path string, explicit bool) error {
	if path == "" {
		return nil
	}
	if _, err := os.Stat(path); err != nil {
		if !explicit && errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return Usagef("config file: %v", err)
	}
	f.Config.SetConfigFile(path)
	if err := f.Config.ReadInConfig(); err != nil {
		return Usagef("config file %s: %v", path, err)
	}
	return nil
}

// JSON reports whether --json output was asked for.
func (f *Factory) JSON() bool { return f.Config.GetBool(KeyJSON) }

// Strict reports whether warnings fail (--strict).
func (f *Factory) Strict() bool { return f.Config.GetBool(KeyStrict) }

// Color reports whether human output may use colour: stdout is a
// terminal, and neither --no-color nor NO_COLOR is set.
func (f *Factory) Color() bool {
	return f.IO.StdoutTTY && !f.IO.NoColorEnv && !f.Config.GetBool(KeyNoColor)
}

// Styles returns the styles for stdout.
func (f *Factory) Styles() *Styles { return NewStyles(f.IO.Out, f.Color()) }

// Timeout is the per-query DNS timeout (--timeout).
func (f *Factory) Timeout() time.Duration {
	d := f.Config.GetDuration(KeyTimeout)
	if d <= 0 {
		return 5 * time.Second
	}
	return d
}

// Servers returns the resolvers to ask: --resolver (comma-separated), or
// the system's from resolv.conf.
func (f *Factory) Servers() ([]string, error) {
	if r := strings.TrimSpace(f.Config.GetString(KeyResolver)); r != "" {
		var out []string
		for _, s := range strings.Split(r, ",") {
			hp, err := dnsclient.NormalizeServer(s)
			if err != nil {
				return nil, Usagef("--resolver: %v", err)
			}
			out = append(out, hp)
		}
		return out, nil
	}
	servers, err := dnsclient.SystemServers(f.ResolvConf)
	if err != nil {
		return nil, &IncompleteError{Err: err}
	}
	return servers, nil
}

// Resolver builds the DNS client from --resolver and --timeout.
func (f *Factory) Resolver(opts ...dnsclient.Option) (*dnsclient.Client, error) {
	servers, err := f.Servers()
	if err != nil {
		return nil, err
	}
	opts = append([]dnsclient.Option{dnsclient.WithTimeout(f.Timeout())}, opts...)
	return dnsclient.New(servers, opts...)
}

// Output prints rep as JSON (with --json) or through human, then returns
// an *ExitError when the report's status maps to a non-zero exit code.
// human is called with the styles for stdout.
func (f *Factory) Output(rep *report.Report, human func(w io.Writer, st *Styles) error) error {
	rep.Finish()
	if f.JSON() {
		if err := rep.WriteJSON(f.IO.Out); err != nil {
			return err
		}
	} else if err := human(f.IO.Out, f.Styles()); err != nil {
		return err
	}
	if code := report.ExitCode(rep.Status, f.Strict()); code != 0 {
		return &ExitError{Code: code}
	}
	return nil
}
