package relay

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/viper"

	"github.com/relayctl/relayctl/pkg/smtpd"
)

func loadYAML(t *testing.T, text string) (Config, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	v := viper.New()
	v.SetConfigFile(path)
	if err := v.ReadInConfig(); err != nil {
		t.Fatal(err)
	}
	return LoadConfig(v)
}

func TestLoadConfigDefaults(t *testing.T) {
	cfg, err := LoadConfig(viper.New())
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.SMTP.TrustedNetworks) != 2 || cfg.SMTP.TrustedNetworks[0].String() != "127.0.0.0/8" {
		t.Errorf("default trusted networks %v", cfg.SMTP.TrustedNetworks)
	}
	if cfg.Delivery.Backoff.Initial != 5*time.Minute || cfg.Delivery.Backoff.Lifetime != 120*time.Hour {
		t.Errorf("default backoff %+v", cfg.Delivery.Backoff)
	}
	if cfg.NoFsync || len(cfg.Listeners) != 0 {
		t.Errorf("%+v", cfg)
	}
}

// TestExampleConfig loads docs/serve.example.yaml, so the documented
// example stays valid.
func TestExampleConfig(t *testing.T) {
	text, err := os.ReadFile("../../docs/serve.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := loadYAML(t, string(text))
	if err != nil {
		t.Fatalf("docs/serve.example.yaml: %v", err)
	}
	if len(cfg.Listeners) != 2 || cfg.Listeners[0].Mode != smtpd.ModeStartTLS || cfg.Listeners[1].Mode != smtpd.ModeTLS {
		t.Errorf("listeners %+v", cfg.Listeners)
	}
	if len(cfg.SMTP.Users) != 2 || len(cfg.SMTP.Users[1].AllowedSenders) != 2 {
		t.Errorf("users %+v", cfg.SMTP.Users)
	}
	if cfg.SMTP.MaxMessageBytes != 10485760 || cfg.SMTP.MaxAuthFailures != 5 || cfg.SMTP.DataTimeout != 10*time.Minute {
		t.Errorf("limits %+v", cfg.SMTP)
	}
	if cfg.Delivery.Routes["*"] != "" || cfg.Delivery.Routes["partner.example"] != "mx.partner.example:2525" || cfg.Delivery.Routes["relay-resigns.example"] != "smarthost.example.net:587" {
		t.Errorf("routes %v", cfg.Delivery.Routes)
	}
	if len(cfg.SMTP.UnsignedDomains) != 1 || cfg.SMTP.UnsignedDomains[0] != "relay-resigns.example" {
		t.Errorf("unsigned domains %v", cfg.SMTP.UnsignedDomains)
	}
	if cfg.Delivery.Backoff.Initial != 5*time.Minute || cfg.Delivery.Backoff.Jitter != 0.2 || cfg.DeliveryLog == "" {
		t.Errorf("delivery %+v log %q", cfg.Delivery.Backoff, cfg.DeliveryLog)
	}
	if cfg.Delivery.PerDomain != 5 || cfg.Delivery.DelayNotify != 4*time.Hour || cfg.Delivery.IdleTimeout != 10*time.Second {
		t.Errorf("delivery %+v", cfg.Delivery)
	}
	if len(cfg.DKIMKeys) != 1 || cfg.DKIMKeys[0].KeyFile == "" {
		t.Errorf("dkim %+v", cfg.DKIMKeys)
	}
}

func TestLoadConfigErrors(t *testing.T) {
	cases := map[string]string{
		"serve.trusted_networks": "serve:\n  trusted_networks: [10.0.0.0/33]\n",
		"serve.users[0]":         "serve:\n  users:\n    - name: a\n",
		"serve.listen[0]":        "serve:\n  listen:\n    - mode: tls\n",
		"serve.routes.x.test":    "serve:\n  routes:\n    x.test: nohostport\n",
		"serve.delivery.port":    "serve:\n  delivery:\n    port: 70000\n",
		"jitter":                 "serve:\n  delivery:\n    retry:\n      jitter: 2\n",
		"serve:":                 "serve:\n  limits:\n    max_recipients: many\n",
	}
	for want, text := range cases {
		_, err := loadYAML(t, text)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want one naming %s", text, err, want)
		}
	}
}

func TestEmptyTrustedNetworks(t *testing.T) {
	cfg, err := loadYAML(t, "serve:\n  trusted_networks: []\n")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.SMTP.TrustedNetworks) != 0 {
		t.Errorf("explicit empty list gave %v", cfg.SMTP.TrustedNetworks)
	}
}

func TestParseListen(t *testing.T) {
	for in, want := range map[string]smtpd.Listener{
		"127.0.0.1:2525":      {Addr: "127.0.0.1:2525", Mode: "plain"},
		"starttls://[::]:587": {Addr: "[::]:587", Mode: "starttls"},
		"tls://0.0.0.0:465":   {Addr: "0.0.0.0:465", Mode: "tls"},
	} {
		got, err := ParseListen(in)
		if err != nil || got != want {
			t.Errorf("ParseListen(%q) = %+v, %v", in, got, err)
		}
	}
	for _, bad := range []string{"smtps://x:1", "nohost", "tls://"} {
		if _, err := ParseListen(bad); err == nil {
			t.Errorf("ParseListen(%q) accepted", bad)
		}
	}
}
