package throttle

import (
	"sync"
	"testing"
	"time"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func newT(cfg Config) (*Throttle, *clock) {
	c := &clock{t: time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)}
	cfg.Now = c.Now
	return New(cfg), c
}

func TestLimitsLookup(t *testing.T) {
	th, _ := newT(Config{Default: Limits{MaxConnections: 10}, Domains: map[string]Limits{"Yahoo.com.": {MaxConnections: 2, PerMinute: 60}}})
	if l := th.Limits("mail.yahoo.com"); l.MaxConnections != 2 || l.PerMinute != 60 {
		t.Errorf("subdomain %+v", l)
	}
	if l := th.Limits("YAHOO.COM"); l.MaxConnections != 2 {
		t.Errorf("case %+v", l)
	}
	if l := th.Limits("notyahoo.com"); l.MaxConnections != 10 {
		t.Errorf("default %+v", l)
	}
}

func TestMaxConnections(t *testing.T) {
	th, c := newT(Config{Domains: map[string]Limits{"gmail.example": {MaxConnections: 2}}})
	r1, _, ok1 := th.Reserve("gmail.example")
	_, _, ok2 := th.Reserve("gmail.example")
	_, at, ok3 := th.Reserve("gmail.example")
	if !ok1 || !ok2 || ok3 || at != c.Now().Add(connRetry) {
		t.Fatalf("%v %v %v %v", ok1, ok2, ok3, at)
	}
	if _, _, ok := th.Reserve("other.example"); !ok {
		t.Error("another domain blocked")
	}
	r1()
	r1() // twice is harmless
	if _, _, ok := th.Reserve("gmail.example"); !ok {
		t.Error("slot not freed")
	}
	if _, _, ok := th.Reserve("gmail.example"); ok {
		t.Error("double release freed two slots")
	}
}

func TestPerMinute(t *testing.T) {
	th, c := newT(Config{Default: Limits{PerMinute: 3}})
	for i := range 3 {
		rel, _, ok := th.Reserve("a.example")
		if !ok {
			t.Fatalf("message %d refused", i)
		}
		rel()
		c.Add(10 * time.Second)
	}
	_, at, ok := th.Reserve("a.example")
	start := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	if ok || !at.Equal(start.Add(time.Minute)) {
		t.Fatalf("4th in a minute: ok=%v at=%v", ok, at)
	}
	c.Add(30 * time.Second) // now start+60s: the first send left the window
	if _, _, ok := th.Reserve("a.example"); !ok {
		t.Error("slot did not free after a minute")
	}
}

func TestPauseOnThrottlingReply(t *testing.T) {
	th, c := newT(Config{PauseInitial: time.Minute, PauseMax: 3 * time.Minute})
	if _, p := th.Observe("y.example", 450, "4.2.1", "mailbox busy"); p {
		t.Error("4.2.1 paused the domain")
	}
	until, p := th.Observe("y.example", 421, "4.7.0", "[TS01] deferred")
	if !p || !until.Equal(c.Now().Add(time.Minute)) {
		t.Fatalf("421: %v %v", until, p)
	}
	if _, at, ok := th.Reserve("y.example"); ok || !at.Equal(until) {
		t.Errorf("reserve while paused: %v %v", ok, at)
	}
	if _, _, ok := th.Reserve("z.example"); !ok {
		t.Error("other domain paused")
	}
	// late answers of attempts under way do not extend the pause
	if u2, _ := th.Observe("y.example", 451, "4.7.1", "later"); !u2.Equal(until) {
		t.Errorf("pause extended to %v", u2)
	}
	c.Add(time.Minute)
	if _, _, ok := th.Reserve("y.example"); !ok {
		t.Error("still paused after the pause")
	}
	u3, _ := th.Observe("y.example", 451, "4.7.1", "later")
	if !u3.Equal(c.Now().Add(2 * time.Minute)) {
		t.Errorf("second pause ends %v, want doubled", u3)
	}
	c.Add(2 * time.Minute)
	u4, _ := th.Observe("y.example", 421, "", "closing")
	if !u4.Equal(c.Now().Add(3 * time.Minute)) {
		t.Errorf("third pause ends %v, want capped at 3m", u4)
	}
	snap := th.Snapshot()
	if len(snap) != 2 || snap[0].Domain != "y.example" || snap[0].Reason != "closing" {
		t.Errorf("snapshot %+v", snap)
	}
	c.Add(3 * time.Minute)
	th.Observe("y.example", 250, "2.0.0", "ok")
	if _, p := th.Paused("y.example"); p {
		t.Error("paused after success")
	}
	if u, _ := th.Observe("y.example", 421, "", "again"); !u.Equal(c.Now().Add(time.Minute)) {
		t.Error("success did not reset the pause length")
	}
}

func TestIsThrottling(t *testing.T) {
	for _, tc := range []struct {
		code int
		enh  string
		text string
		want bool
	}{{421, "", "", true}, {421, "4.3.2", "", true}, {450, "4.7.1", "rate limited", true}, {451, "4.7.0", "", true},
		{451, "4.7.1", "Greylisted, try again in 5 minutes", false}, {451, "4.3.0", "", false}, {550, "5.7.1", "", false}, {452, "4.2.2", "", false}} {
		if IsThrottling(tc.code, tc.enh, tc.text) != tc.want {
			t.Errorf("%d %s", tc.code, tc.enh)
		}
	}
}
