package relay

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/relayctl/relayctl/pkg/smtpd"
	"github.com/relayctl/relayctl/pkg/smtptest"
)

// writeCert writes a self-signed certificate for 127.0.0.1 with common
// name cn and returns the file paths and a pool trusting it.
func writeCert(t *testing.T, dir, cn string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// TestTLSListenersAndCertificateReload: implicit-TLS and STARTTLS
// listeners from certificate files, AUTH over them, and Reload picking
// up a renewed certificate for new connections.
func TestTLSListenersAndCertificateReload(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, pool := writeCert(t, dir, "first")
	var cfg Config
	l := startLab(t, func(c *Config) {
		c.Listeners = []smtpd.Listener{
			{Addr: "127.0.0.1:0", Mode: smtpd.ModeTLS, CertFile: certFile, KeyFile: keyFile},
			{Addr: "127.0.0.1:0", Mode: smtpd.ModeStartTLS, CertFile: certFile, KeyFile: keyFile},
		}
		cfg = *c
	})
	addrs := l.relay.Addrs()
	msg := "From: billing@example.com\r\nSubject: tls\r\n\r\nx\r\n"
	submit := func(c *smtp.Client) {
		t.Helper()
		defer c.Close()
		if err := c.Auth(sasl.NewPlainClient("", "app", password)); err != nil {
			t.Fatal(err)
		}
		if err := smtptest.Send(c, "billing@example.com", []string{"user@dest.test"}, msg); err != nil {
			t.Fatal(err)
		}
	}
	peerCN := func(c *smtp.Client) string {
		t.Helper()
		if err := c.Hello("app.test"); err != nil { // completes the handshake
			t.Fatal(err)
		}
		st, ok := c.TLSConnectionState()
		if !ok || len(st.PeerCertificates) == 0 {
			t.Fatal("no TLS")
		}
		return st.PeerCertificates[0].Subject.CommonName
	}
	conf := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
	c, err := smtp.DialTLS(addrs[0].String(), conf)
	if err != nil {
		t.Fatal(err)
	}
	if cn := peerCN(c); cn != "first" {
		t.Errorf("certificate %q", cn)
	}
	submit(c)
	c, err = smtp.DialStartTLS(addrs[1].String(), conf)
	if err != nil {
		t.Fatal(err)
	}
	if cn := peerCN(c); cn != "first" {
		t.Errorf("certificate %q", cn)
	}
	submit(c)
	l.mx.Wait(t, 2, 15*time.Second)

	// Renew the certificate in place and reload.
	_, _, pool2 := writeCert(t, dir, "renewed")
	if err := l.relay.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	c, err = smtp.DialTLS(addrs[0].String(), &tls.Config{RootCAs: pool2, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatalf("after reload: %v", err)
	}
	if cn := peerCN(c); cn != "renewed" {
		t.Errorf("after reload the certificate is %q", cn)
	}
	c.Close()

	// A reload with a broken certificate changes nothing.
	os.WriteFile(certFile, []byte("garbage"), 0o600)
	if err := l.relay.Reload(cfg); err == nil {
		t.Error("reload accepted a broken certificate")
	}
	c, err = smtp.DialTLS(addrs[0].String(), &tls.Config{RootCAs: pool2, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatalf("after a failed reload: %v", err)
	}
	if cn := peerCN(c); cn != "renewed" {
		t.Errorf("after a failed reload the certificate is %q", cn)
	}
	c.Close()
}
