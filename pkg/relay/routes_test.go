package relay

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/relayctl/relayctl/pkg/delivery"
)

// Routes in the long form carry the delivery engine's per-route TLS policy
// and AUTH credentials.
func TestRouteTLSAndAuth(t *testing.T) {
	pw := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pw, []byte("s3cret\n"), 0o600)
	cfg, err := loadYAML(t, `
serve:
  routes:
    "*":
      host: smtp.provider.example:465
      tls: implicit
      username: relay@example.org
      password_file: `+pw+`
    partner.example: {host: "mx.partner.example:25", tls: require}
    lab.test: "127.0.0.1:2526"
`)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]delivery.Route{
		"*":               {Addr: "smtp.provider.example:465", TLS: delivery.TLSImplicit, Username: "relay@example.org", Password: "s3cret"},
		"partner.example": {Addr: "mx.partner.example:25", TLS: delivery.TLSRequire},
	}
	if len(cfg.Delivery.RouteSettings) != len(want) {
		t.Fatalf("route settings %+v", cfg.Delivery.RouteSettings)
	}
	for k, w := range want {
		if got := cfg.Delivery.RouteSettings[k]; got != w {
			t.Errorf("%s: %+v, want %+v", k, got, w)
		}
	}
	if cfg.Delivery.Routes["lab.test"] != "127.0.0.1:2526" {
		t.Errorf("short form lost: %v", cfg.Delivery.Routes)
	}
	for _, bad := range []string{
		`{host: "a:1", tls: maybe}`,
		`{host: "a:1", username: u}`,
		`{host: "a:1", password_file: /nonexistent/pw, username: u}`,
	} {
		if _, err := loadYAML(t, "serve:\n  routes:\n    x.test: "+bad+"\n"); err == nil || !strings.Contains(err.Error(), "serve.routes.x.test") {
			t.Errorf("%s: err = %v", bad, err)
		}
	}
}
