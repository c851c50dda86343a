// Package postfixtest runs real Postfix programs on loopback for
// interoperability tests: smtp-sink(1), Postfix's receiving test server,
// capturing every transaction to a dump file, and a throw-away Postfix
// instance (its own config directory, queue and log; smtpd on a loopback
// port, relaying everything to a given host) that a client can submit to.
// What relayctl sends must be accepted by a real MTA as RFC 5321 and
// RFC 5322 say; these let tests check that against Postfix rather than
// against our own go-smtp receivers.
//
// Without the Debian package postfix (installed by .ci/deps) the helpers
// skip the test and say why; Start also needs root, as Postfix's master
// does.
package postfixtest

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Tool returns the path of one of Postfix's programs (they live in
// /usr/sbin, which is not always on PATH), or skips the test.
func Tool(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if p, err := exec.LookPath("/usr/sbin/" + name); err == nil {
		return p
	}
	t.Skipf("%s not installed (Debian package postfix, installed by .ci/deps): skipping the interoperability test", name)
	return ""
}

// freePort picks a loopback port by listening on :0 and closing. Postfix
// programs take the port on their command line; callers retry if another
// process takes it in between.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// worldDir makes a temporary directory that unprivileged Postfix
// processes (smtp-sink after -u, Postfix's daemons) may enter and write.
func worldDir(t testing.TB, prefix string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Sink is a running smtp-sink that appends every transaction to a dump.
type Sink struct {
	// Addr is "127.0.0.1:port"; Port the port alone.
	Addr string
	Port int
	dump string
}

// StartSink starts smtp-sink on a free loopback port; it is killed when
// the test ends. It announces itself as sink.test and offers what
// smtp-sink offers by default (PIPELINING, 8BITMIME, DSN, ...; no
// STARTTLS).
func StartSink(t testing.TB) *Sink {
	t.Helper()
	bin := Tool(t, "smtp-sink")
	dump := filepath.Join(worldDir(t, "relayctl-sink-"), "dump")
	for attempt := 0; attempt < 3; attempt++ {
		port := freePort(t)
		addr := "127.0.0.1:" + strconv.Itoa(port)
		args := []string{"-4", "-h", "sink.test", "-D", dump}
		if os.Geteuid() == 0 {
			// As root, smtp-sink must switch user before it serves.
			args = append(args, "-u", "nobody")
		}
		cmd := exec.Command(bin, append(args, addr, "10")...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatalf("smtp-sink: %v", err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		t.Cleanup(func() { cmd.Process.Kill(); <-exited })
		if waitListening(addr, exited, 5*time.Second) {
			return &Sink{Addr: addr, Port: port, dump: dump}
		}
		select {
		case <-exited:
			t.Logf("smtp-sink on %s exited: %s", addr, out.String())
		default:
			t.Fatalf("smtp-sink did not listen on %s within 5s: %s", addr, out.String())
		}
	}
	t.Fatal("smtp-sink could not start on a free port")
	return nil
}

// waitListening dials addr until it answers, the process exits or the
// timeout passes.
func waitListening(addr string, exited <-chan struct{}, timeout time.Duration) bool {
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		select {
		case <-exited:
			return false
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return true
		}
	}
	return false
}

// Message is one transaction captured by the sink: the envelope it saw
// and the message exactly as received.
type Message struct {
	// Helo is the client's EHLO/HELO argument; Mail the MAIL FROM
	// arguments ("<addr> SIZE=..."); Rcpts one RCPT TO argument list per
	// recipient, in order.
	Helo, Mail string
	Rcpts      []string
	// Data is the message with CRLF line endings and no dot-stuffing.
	Data []byte
}

// Messages parses the dump (smtp-sink(1), DUMP FILE FORMAT): per
// transaction X-Client-Addr, X-Client-Proto, X-Helo-Args, X-Mail-Args,
// one X-Rcpt-Args per RCPT, the sink's three-line Received field, then
// the message with dot-stuffing undone and lines ending in LF, then an
// empty line. Every LF is turned back into CRLF: that restores the bytes
// on the wire for any message without bare CR or LF, which RFC 5321
// §2.3.8 forbids and relayctl refuses. A transaction still being written
// is left out.
func (s *Sink) Messages(t testing.TB) []Message {
	t.Helper()
	b, err := os.ReadFile(s.dump)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []Message
	for _, chunk := range strings.Split(string(b), "X-Client-Addr: ")[1:] {
		if !strings.HasSuffix(chunk, "\n\n") {
			break
		}
		lines := strings.SplitAfter(chunk, "\n")
		var m Message
		i, end := 1, -1
		for ; i < len(lines) && end < 0; i++ {
			l := strings.TrimSuffix(lines[i], "\n")
			if v, ok := strings.CutPrefix(l, "X-Helo-Args: "); ok {
				m.Helo = v
			} else if v, ok := strings.CutPrefix(l, "X-Mail-Args: "); ok {
				m.Mail = v
			} else if v, ok := strings.CutPrefix(l, "X-Rcpt-Args: "); ok {
				m.Rcpts = append(m.Rcpts, v)
			} else if strings.HasPrefix(l, "Received: ") {
				end = i + 3 // the sink's own Received field is three lines
			}
		}
		if end < 0 || end > len(lines) {
			t.Fatalf("smtp-sink dump: no end of the sink's own header in %q", chunk)
		}
		msg := strings.TrimSuffix(strings.Join(lines[end:], ""), "\n") // the closing empty line
		m.Data = []byte(strings.ReplaceAll(msg, "\n", "\r\n"))
		out = append(out, m)
	}
	return out
}

// Wait polls until the sink has captured n messages or the timeout
// passes, and fails the test in the latter case.
func (s *Sink) Wait(t testing.TB, n int, timeout time.Duration) []Message {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := s.Messages(t)
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("smtp-sink captured %d messages within %v, want %d", len(got), timeout, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Postfix is a running throw-away Postfix instance.
type Postfix struct {
	// Addr is its smtpd's "127.0.0.1:port"; Hostname its myhostname.
	Addr, Hostname string
	// RootCAs trusts the smtpd's certificate (with Options.TLSNames).
	RootCAs *x509.CertPool
	dir     string
}

// Options configure a throw-away Postfix instance.
type Options struct {
	// RelayHost receives everything the instance accepts ("host:port",
	// delivered to without MX lookup and without TLS). Required.
	RelayHost string
	// TLSNames, when set, makes smtpd offer STARTTLS (RFC 3207) with a
	// throw-away certificate for these DNS names and 127.0.0.1, and
	// record the TLS use in its Received field ("with ESMTPS").
	TLSNames []string
}

// master.cf: only the services a relay-only instance uses.
const masterCF = `%s inet n - n - - smtpd
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
smtp      unix  - - n - - smtp
relay     unix  - - n - - smtp
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
tlsmgr    unix  - - n 1000? 1 tlsmgr
`

// Start runs a Postfix instance whose smtpd listens on a free loopback
// port, accepts mail from 127.0.0.0/8 for any domain (no AUTH, no TLS)
// and relays it to opts.RelayHost. It is stopped, and its files removed,
// when the test ends. Its log is in Log. Needs root (Postfix's master
// runs as root and its daemons as the postfix user); skips otherwise.
func Start(t testing.TB, opts Options) *Postfix {
	t.Helper()
	bin := Tool(t, "postfix")
	if os.Geteuid() != 0 {
		t.Skip("a throw-away Postfix instance needs root: skipping the interoperability test")
	}
	if opts.RelayHost == "" {
		t.Fatal("postfixtest.Start: no RelayHost")
	}
	host, port, err := net.SplitHostPort(opts.RelayHost)
	if err != nil {
		t.Fatalf("postfixtest.Start: RelayHost: %v", err)
	}
	dir := worldDir(t, "relayctl-postfix-")
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	etc, queue, data := filepath.Join(dir, "etc"), filepath.Join(dir, "queue"), filepath.Join(dir, "data")
	for _, d := range []string{etc, queue, data} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// data_directory belongs to mail_owner; the rest stays root's, as
	// postfix check wants it.
	out, err := exec.Command("chown", "postfix", data).CombinedOutput()
	if err != nil {
		t.Skipf("no postfix user (%v: %s): skipping the interoperability test", err, out)
	}
	p := &Postfix{dir: dir}
	var tlsCF []string
	if len(opts.TLSNames) > 0 {
		certFile, keyFile := filepath.Join(etc, "cert.pem"), filepath.Join(etc, "key.pem")
		p.RootCAs = writeCert(t, certFile, keyFile, opts.TLSNames)
		tlsCF = []string{
			"smtpd_tls_security_level = may",
			"smtpd_tls_cert_file = " + certFile,
			"smtpd_tls_key_file = " + keyFile,
			"smtpd_tls_received_header = yes",
			"smtpd_tls_loglevel = 1",
		}
	}
	for attempt := 0; attempt < 3; attempt++ {
		listen := "127.0.0.1:" + strconv.Itoa(freePort(t))
		p.Addr, p.Hostname = listen, fmt.Sprintf("postfix-%d.test", attempt)
		mainCF := strings.Join(append([]string{
			"compatibility_level = 3.6",
			"queue_directory = " + queue,
			"data_directory = " + data,
			"mail_owner = postfix",
			"setgid_group = postdrop",
			"myhostname = " + p.Hostname,
			"mydestination =",
			"relayhost = [" + host + "]:" + port,
			"mynetworks = 127.0.0.0/8",
			"inet_interfaces = loopback-only",
			"inet_protocols = ipv4",
			"smtpd_relay_restrictions = permit_mynetworks, reject",
			"smtp_tls_security_level = none",
			"alias_maps =",
			"alias_database =",
			"local_recipient_maps =",
			"maillog_file = " + filepath.Join(dir, "maillog"),
			"maillog_file_prefixes = " + dir,
		}, tlsCF...), "\n") + "\n"
		if err := os.WriteFile(filepath.Join(etc, "main.cf"), []byte(mainCF), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(etc, "master.cf"), []byte(fmt.Sprintf(masterCF, listen)), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(bin, "-c", etc, "start").CombinedOutput(); err != nil {
			// Another process may take the port between freePort and
			// Postfix's bind (parallel test binaries do): try another.
			if log := p.Log(); strings.Contains(log, "Address already in use") && attempt < 2 {
				t.Logf("postfix start: %s taken, trying another port", listen)
				continue // the master exited on the failed bind: nothing to stop
			}
			t.Fatalf("postfix start: %v\n%s\n%s", err, out, p.Log())
		}
		t.Cleanup(func() { p.stop(t, bin, etc, queue) })
		if p.ready(10 * time.Second) {
			return p
		}
		t.Logf("postfix did not answer on %s; log:\n%s", listen, p.Log())
		p.stop(t, bin, etc, queue)
	}
	t.Fatal("postfix could not start on a free port")
	return nil
}

// ready waits for this instance's greeting (not just any listener: the
// port may have been taken by someone else between freePort and bind).
func (p *Postfix) ready(timeout time.Duration) bool {
	want := "220 " + p.Hostname + " "
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		c, err := net.DialTimeout("tcp", p.Addr, time.Second)
		if err != nil {
			continue
		}
		c.SetDeadline(time.Now().Add(2 * time.Second))
		line, _ := bufio.NewReader(c).ReadString('\n')
		c.Write([]byte("QUIT\r\n"))
		c.Close()
		return strings.HasPrefix(line, want)
	}
	return false
}

// stop stops the master and waits for it to go, so its files can be
// removed; a master that does not stop within 5s is killed.
func (p *Postfix) stop(t testing.TB, bin, etc, queue string) {
	pidFile := filepath.Join(queue, "pid", "master.pid")
	b, _ := os.ReadFile(pidFile)
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	exec.Command(bin, "-c", etc, "stop").Run()
	if pid <= 0 {
		return
	}
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if syscall.Kill(pid, 0) != nil {
			return
		}
	}
	t.Logf("postfix master %d did not stop within 5s: killing it", pid)
	syscall.Kill(pid, syscall.SIGKILL)
}

// Log returns the instance's mail log so far.
func (p *Postfix) Log() string {
	b, _ := os.ReadFile(filepath.Join(p.dir, "maillog"))
	return string(b)
}

// WaitLog polls the mail log until it contains n lines with substr, or
// fails the test after timeout.
func (p *Postfix) WaitLog(t testing.TB, substr string, n int, timeout time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(timeout); ; time.Sleep(50 * time.Millisecond) {
		if strings.Count(p.Log(), substr) >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("postfix log has fewer than %d %q lines after %v:\n%s", n, substr, timeout, p.Log())
		}
	}
}

// writeCert writes a self-signed ECDSA certificate for names and
// 127.0.0.1 with its key (PEM, as Postfix reads them) and returns a pool
// that trusts it.
func writeCert(t testing.TB, certFile, keyFile string, names []string) *x509.CertPool {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: names[0]},
		DNSNames:              names,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return pool
}
