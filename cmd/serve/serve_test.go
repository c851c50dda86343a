package serve_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/relayctl/relayctl/cmd/cmdtest"
	"github.com/relayctl/relayctl/pkg/smtpd"
	"github.com/relayctl/relayctl/pkg/smtptest"
	"golang.org/x/crypto/bcrypt"
)

func TestHashPassword(t *testing.T) {
	res := cmdtest.RunStdin(t, strings.NewReader("hunter2\n"), "serve", "hash-password")
	if res.Code != 0 {
		t.Fatalf("exit %d: %s", res.Code, res.Stderr)
	}
	h := strings.TrimSpace(res.Stdout)
	if err := bcrypt.CompareHashAndPassword([]byte(h), []byte("hunter2")); err != nil {
		t.Fatalf("%q is not a hash of the password: %v", h, err)
	}
	if res := cmdtest.RunStdin(t, strings.NewReader("\n"), "serve", "hash-password"); res.Code != 2 {
		t.Errorf("empty password: exit %d", res.Code)
	}
}

func TestServeUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"serve", "--listen", "smtps://127.0.0.1:1"},
		{"serve", "--route", "nohost"},
		{"serve", "--log-level", "loud"},
		{"serve", "--cert", "a.pem"},
		{"serve", "--trusted-network", "10.0.0.0/40"},
		{"serve", "--delivery-port", "0"},
		{"serve", "extra-arg"},
	} {
		res := cmdtest.Run(t, args...)
		if res.Code != 2 || strings.Count(strings.TrimSpace(res.Stderr), "\n") != 0 {
			t.Errorf("%v: exit %d, stderr %q; want 2 and one line", args, res.Code, res.Stderr)
		}
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.yaml")
	os.WriteFile(cfg, []byte("serve:\n  users:\n    - name: x\n      password_hash: nope\n"), 0o600)
	res := cmdtest.Run(t, "--config", cfg, "serve", "--spool", filepath.Join(dir, "s"), "--listen", "127.0.0.1:0")
	if res.Code != 2 || !strings.Contains(res.Stderr, "bcrypt") {
		t.Errorf("bad hash: exit %d, %q", res.Code, res.Stderr)
	}
}

// The tests below run the real binary: signals and kill -9 need a process.

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func relayctlBin(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "relayctl-serve-test")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "relayctl")
		out, err := exec.Command("go", "build", "-o", binPath, "../..").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

type proc struct {
	cmd  *exec.Cmd
	addr string
	mu   sync.Mutex
	log  strings.Builder
	done chan error
}

var listenRE = regexp.MustCompile(`listening on (\S+) `)

// startServe runs `relayctl serve args…` and waits until it listens.
func startServe(t *testing.T, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(relayctlBin(t), args...)
	cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+t.TempDir(), "XDG_STATE_HOME="+t.TempDir())
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, done: make(chan error, 1)}
	addrc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.log.WriteString(line + "\n")
			p.mu.Unlock()
			if m := listenRE.FindStringSubmatch(line); m != nil {
				select {
				case addrc <- m[1]:
				default:
				}
			}
		}
		io.Copy(io.Discard, stderr)
		p.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("relayctl serve log:\n%s", p.logs())
		}
	})
	select {
	case p.addr = <-addrc:
	case err := <-p.done:
		t.Fatalf("serve exited: %v\n%s", err, p.logs())
	case <-time.After(20 * time.Second):
		t.Fatalf("serve did not start\n%s", p.logs())
	}
	return p
}

func (p *proc) logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

func (p *proc) stop(t *testing.T, sig syscall.Signal) error {
	t.Helper()
	p.cmd.Process.Signal(sig)
	select {
	case err := <-p.done:
		return err
	case <-time.After(15 * time.Second):
		t.Fatalf("serve did not exit after %v\n%s", sig, p.logs())
	}
	return nil
}

func needSwaks(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("swaks")
	if err != nil {
		t.Skip("swaks not installed (bash .ci/deps installs it): skipping the swaks interop test")
	}
	return path
}

func swaks(t *testing.T, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command(needSwaks(t), args...).CombinedOutput()
	return string(out), err
}

// TestSwaksThroughServe: swaks → relayctl serve → MX on loopback, with
// AUTH from a config file, then SIGHUP adds a user, then SIGTERM stops
// cleanly.
func TestSwaksThroughServe(t *testing.T) {
	needSwaks(t)
	mx := smtptest.Start(t, smtptest.Options{})
	dir := t.TempDir()
	hashA, _ := smtpd.HashPassword("pw-a")
	hashB, _ := smtpd.HashPassword("pw-b")
	cfgPath := filepath.Join(dir, "config.yaml")
	writeCfg := func(users string) {
		text := "serve:\n  trusted_networks: []\n  delivery:\n    log: " + filepath.Join(dir, "delivery.jsonl") + "\n  users:\n" + users
		if err := os.WriteFile(cfgPath, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeCfg("    - name: a\n      password_hash: \"" + hashA + "\"\n")
	p := startServe(t, "--config", cfgPath, "serve", "--listen", "127.0.0.1:0", "--spool", filepath.Join(dir, "spool"),
		"--hostname", "relay.test", "--route", "*="+mx.Addr, "--resolver", "127.0.0.1:1")

	out, err := swaks(t, "--server", p.addr, "--from", "app@example.com", "--to", "user@dest.test",
		"--auth", "PLAIN", "--auth-user", "a", "--auth-password", "pw-a", "--header", "Subject: swaks test")
	if err != nil || !strings.Contains(out, "250 2.0.0 OK: queued") {
		t.Fatalf("swaks: %v\n%s", err, out)
	}
	got := mx.Wait(t, 1, 15*time.Second)
	if !strings.Contains(string(got[0].Data), "Subject: swaks test") || !strings.Contains(string(got[0].Data), "by relay.test (relayctl) with ESMTPA") {
		t.Errorf("MX got:\n%s", got[0].Data)
	}

	// Without AUTH: refused.
	out, err = swaks(t, "--server", p.addr, "--from", "app@example.com", "--to", "user@dest.test")
	if err == nil || !strings.Contains(out, "530 5.7.0 Authentication required") {
		t.Fatalf("unauthenticated swaks: %v\n%s", err, out)
	}

	// SIGHUP picks up a new user.
	writeCfg("    - name: a\n      password_hash: \"" + hashA + "\"\n    - name: b\n      password_hash: \"" + hashB + "\"\n")
	p.cmd.Process.Signal(syscall.SIGHUP)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(p.logs(), "configuration reloaded") {
		if time.Now().After(deadline) {
			t.Fatalf("no reload logged\n%s", p.logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
	out, err = swaks(t, "--server", p.addr, "--from", "b@example.com", "--to", "user@dest.test",
		"--auth", "LOGIN", "--auth-user", "b", "--auth-password", "pw-b")
	if err != nil {
		t.Fatalf("user added by SIGHUP: %v\n%s", err, out)
	}
	mx.Wait(t, 2, 15*time.Second)

	if err := p.stop(t, syscall.SIGTERM); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
	if !strings.Contains(p.logs(), "stopped") {
		t.Errorf("no clean stop logged\n%s", p.logs())
	}
}

// TestKill9LosesNothing: 20 messages are accepted while the MX defers
// half of them at RCPT (so they wait in the queue) and stalls the other
// half at DATA (so their deliveries are in flight, and end in 451 whatever
// happens); kill -9 the relay; a new relay on the same spool delivers
// every one of them.
func TestKill9LosesNothing(t *testing.T) {
	mx := smtptest.Start(t, smtptest.Options{})
	mx.SetHook(func(cmd, arg string) error {
		switch {
		case cmd == "RCPT" && (strings.HasSuffix(arg, "0@dest.test") || strings.HasSuffix(arg, "2@dest.test") ||
			strings.HasSuffix(arg, "4@dest.test") || strings.HasSuffix(arg, "6@dest.test") || strings.HasSuffix(arg, "8@dest.test")):
			return smtptest.Reply(451, [3]int{4, 7, 1}, "greylisted")
		case cmd == "DATA":
			time.Sleep(2 * time.Second)
			return smtptest.Reply(451, [3]int{4, 3, 0}, "try again")
		}
		return nil
	})
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "config.yaml")
	os.WriteFile(cfgPath, []byte("serve:\n  delivery:\n    retry:\n      initial: 300ms\n      max: 1s\n      jitter: 0\n"), 0o600)
	args := []string{"--config", cfgPath, "serve", "--listen", "127.0.0.1:0", "--spool", filepath.Join(dir, "spool"),
		"--hostname", "relay.test", "--route", "*=" + mx.Addr, "--resolver", "127.0.0.1:1"}
	p := startServe(t, args...)
	const n = 20
	for i := range n {
		c, err := net.Dial("tcp", p.addr)
		if err != nil {
			t.Fatal(err)
		}
		msg := fmt.Sprintf("EHLO x\r\nMAIL FROM:<app@example.com>\r\nRCPT TO:<u%d@dest.test>\r\nDATA\r\n", i)
		fmt.Fprint(c, msg)
		br := bufio.NewReader(c)
		var last string
		for !strings.HasPrefix(last, "354") {
			if last, err = br.ReadString('\n'); err != nil {
				t.Fatal(err)
			}
		}
		fmt.Fprintf(c, "From: app@example.com\r\nSubject: %d\r\n\r\nbody\r\n.\r\nQUIT\r\n", i)
		if last, err = br.ReadString('\n'); err != nil || !strings.HasPrefix(last, "250 ") {
			t.Fatalf("message %d: %q %v", i, last, err)
		}
		c.Close()
	}
	time.Sleep(300 * time.Millisecond) // the odd ones are in flight now
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done

	if n := len(mx.Messages()); n != 0 {
		t.Fatalf("the MX accepted %d messages before the restart", n)
	}
	mx.SetHook(nil)
	p2 := startServe(t, args...)
	got := mx.Wait(t, n, 30*time.Second)
	seen := map[string]bool{}
	for _, m := range got {
		for _, r := range m.To {
			seen[r] = true
		}
	}
	if len(seen) != n {
		t.Fatalf("after kill -9 and restart %d of %d recipients were delivered", len(seen), n)
	}
	if err := p2.stop(t, syscall.SIGTERM); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
}
