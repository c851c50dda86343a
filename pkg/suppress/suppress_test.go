package suppress

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relayctl/relayctl/pkg/events"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func open(t *testing.T, p Policy) (*Store, *clock) {
	t.Helper()
	c := &clock{t: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)}
	s, err := Open(filepath.Join(t.TempDir(), "spool", "suppress.json"), p, c.Now)
	if err != nil {
		t.Fatal(err)
	}
	return s, c
}

func TestHardBounceSuppresses(t *testing.T) {
	s, _ := open(t, DefaultPolicy())
	for _, tc := range []struct {
		addr     string
		code     int
		enh      string
		suppress bool
	}{
		{"Gone@Example.org", 550, "5.1.1", true},
		{"disabled@example.org", 550, "5.2.1", true},
		{"full@example.org", 552, "5.2.2", false}, // mailbox full: soft
		{"policy@example.org", 550, "5.7.1", false},
		{"temp@example.org", 450, "4.1.1", false},
	} {
		e, err := s.Observe(tc.addr, events.Bounced, tc.code, tc.enh, fmt.Sprintf("%d %s no", tc.code, tc.enh))
		if err != nil {
			t.Fatal(err)
		}
		if (e != nil) != tc.suppress {
			t.Errorf("%s %s: entry %v, want suppressed=%v", tc.addr, tc.enh, e, tc.suppress)
		}
		_, ok, _ := s.Check(strings.ToUpper(tc.addr))
		if ok != tc.suppress {
			t.Errorf("%s: Check %v", tc.addr, ok)
		}
	}
	e, _, _ := s.Check("gone@example.org")
	code, enh, text := Reply(e)
	if code != 550 || enh != [3]int{5, 7, 1} || !strings.Contains(text, "<gone@example.org> is on the suppression list (hard-bounce 550 5.1.1 on 2026-11-01)") {
		t.Errorf("reply %d %v %q", code, enh, text)
	}
}

func TestConfiguredHardCodes(t *testing.T) {
	p := DefaultPolicy()
	p.HardCodes = []string{"554", "5.7.*"}
	s, _ := open(t, p)
	if e, _ := s.Observe("a@example.org", events.Bounced, 554, "", "554 no"); e == nil {
		t.Error("basic code 554 not hard")
	}
	if e, _ := s.Observe("b@example.org", events.Bounced, 550, "5.7.26", "550 5.7.26 dmarc"); e == nil {
		t.Error("5.7.* not hard")
	}
	if e, _ := s.Observe("c@example.org", events.Bounced, 550, "5.1.1", ""); e != nil {
		t.Error("5.1.1 hard though not configured")
	}
	for _, bad := range []string{"4.1.1", "5.x", "450", "abc"} {
		p.HardCodes = []string{bad}
		if err := p.Validate(); err == nil {
			t.Errorf("pattern %q accepted", bad)
		}
	}
}

func TestActions(t *testing.T) {
	for action, ok := range map[string]bool{ActionReject: true, ActionDrop: true, "": false, "discard": false, "Drop": false} {
		p := DefaultPolicy()
		p.Action = action
		if err := p.Validate(); (err == nil) != ok {
			t.Errorf("action %q: %v", action, err)
		}
	}
}

func TestSoftBouncesInARow(t *testing.T) {
	s, c := open(t, DefaultPolicy()) // 3 within 7 days, 30 days
	a := "full@example.org"
	soft := func() *Entry {
		t.Helper()
		e, err := s.Observe(a, events.Expired, 452, "4.2.2", "452 4.2.2 mailbox full")
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	// deferrals never count
	for range 10 {
		s.Observe(a, events.Deferred, 452, "4.2.2", "full")
	}
	if soft() != nil || soft() != nil {
		t.Fatal("suppressed too early")
	}
	// a delivery in between starts over
	s.Observe(a, events.Delivered, 250, "2.0.0", "ok")
	if soft() != nil || soft() != nil {
		t.Fatal("delivery did not reset the run")
	}
	// the run is older than the period: starts over
	c.Add(8 * 24 * time.Hour)
	if soft() != nil || soft() != nil {
		t.Fatal("stale run counted")
	}
	e := soft()
	if e == nil || e.Source != SoftBounce || !strings.Contains(e.Reason, "3 soft bounces") {
		t.Fatalf("entry %+v", e)
	}
	if _, ok, _ := s.Check(a); !ok {
		t.Fatal("not suppressed")
	}
	c.Add(31 * 24 * time.Hour)
	if _, ok, _ := s.Check(a); ok {
		t.Fatal("soft suppression did not expire")
	}
}

func TestManualDomainAndRemove(t *testing.T) {
	s, _ := open(t, DefaultPolicy())
	if err := s.Add(Entry{Address: "@Spamtrap.example", Reason: "known trap"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Add(Entry{Address: "Bob <bob@example.org>"}); err != nil {
		t.Fatal(err)
	}
	if e, ok, _ := s.Check("anyone@spamtrap.example"); !ok || e.Source != Manual {
		t.Error("domain entry not applied")
	}
	if _, ok, _ := s.Check("bob@example.org"); !ok {
		t.Error("manual entry missing")
	}
	_, _, text := Reply(Entry{Address: "@spamtrap.example", Source: Manual, Reason: "known trap"})
	if !strings.Contains(text, "domain spamtrap.example") || !strings.Contains(text, "known trap") {
		t.Errorf("%q", text)
	}
	if found, err := s.Remove("BOB@example.org"); !found || err != nil {
		t.Errorf("remove: %v %v", found, err)
	}
	if found, _ := s.Remove("bob@example.org"); found {
		t.Error("removed twice")
	}
	for _, bad := range []string{"", "no-at", "a@", "@", "@nodot", "a@b\r\nX: y"} {
		if err := s.Add(Entry{Address: bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestTwoProcessesShareTheFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "suppress.json")
	a, err := Open(path, DefaultPolicy(), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Open(path, DefaultPolicy(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st := a
			if i%2 == 1 {
				st = b
			}
			if err := st.Add(Entry{Address: fmt.Sprintf("u%d@example.org", i)}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	for _, st := range []*Store{a, b} {
		list, err := st.List()
		if err != nil || len(list) != 40 {
			t.Fatalf("%d entries (%v), want 40: lost updates", len(list), err)
		}
	}
	if _, ok, _ := b.Check("u0@example.org"); !ok {
		t.Error("b does not see a's entry")
	}
}

func TestImportExportRoundTrip(t *testing.T) {
	s, _ := open(t, DefaultPolicy())
	in := "# from the old ESP\naddress\none@example.org\ntwo@example.org,\"unsubscribed, by phone\"\n\n@closed.example\n"
	n, err := s.Import(strings.NewReader(in), "")
	if err != nil || n != 3 {
		t.Fatalf("import %d %v", n, err)
	}
	s.Observe("hard@example.org", events.Bounced, 550, "5.1.1", "550 5.1.1 unknown")
	var out bytes.Buffer
	if err := s.Export(&out); err != nil {
		t.Fatal(err)
	}
	s2, _ := open(t, DefaultPolicy())
	if n, err := s2.Import(bytes.NewReader(out.Bytes()), ""); err != nil || n != 4 {
		t.Fatalf("re-import %d %v\n%s", n, err, out.String())
	}
	l1, _ := s.List()
	l2, _ := s2.List()
	if fmt.Sprint(l1) != fmt.Sprint(l2) {
		t.Errorf("round trip differs:\n%v\n%v", l1, l2)
	}
	if _, err := s.Import(strings.NewReader("not an address\n"), ""); err == nil {
		t.Error("bad line imported")
	}
}

func TestCorruptFile(t *testing.T) {
	s, _ := open(t, DefaultPolicy())
	if err := writeAtomic(s.Path(), []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Check("a@example.org"); err == nil {
		t.Error("corrupt file read without error")
	}
}

func FuzzImport(f *testing.F) {
	f.Add("a@example.org\n@d.example,reason\n")
	f.Add("address,source,reason,code,enhanced,added,expires\nx@y.z,manual,\"a,b\",550,5.1.1,2026-01-01T00:00:00Z,\n")
	f.Fuzz(func(t *testing.T, in string) {
		s, err := Open(filepath.Join(t.TempDir(), "s.json"), DefaultPolicy(), nil)
		if err != nil {
			t.Fatal(err)
		}
		n, err := s.Import(strings.NewReader(in), "")
		if err != nil {
			return
		}
		list, err := s.List()
		if err != nil {
			t.Fatal(err)
		}
		if len(list) > n {
			t.Fatalf("%d entries from %d imported", len(list), n)
		}
		for _, e := range list {
			if _, ok, _ := s.Check(strings.Replace(e.Address, "@", "x@", 1)); strings.HasPrefix(e.Address, "@") && !ok && e.Active(time.Now()) {
				t.Fatalf("domain entry %q does not apply", e.Address)
			}
		}
	})
}
