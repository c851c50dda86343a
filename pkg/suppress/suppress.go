// Package suppress is the relay's suppression list: recipients it must
// not send to again, because they bounced permanently (RFC 5321 §4.2.1
// 5yz replies whose RFC 3463 enhanced code says the address is bad:
// 5.1.x "bad destination mailbox address", 5.2.1 "mailbox disabled"),
// bounced softly too often in a row, or were added by an operator.
//
// The list is one JSON file, stored next to the queue, rewritten
// atomically (temporary file, fsync, rename, directory fsync) under an
// exclusive lock file, so `relayctl suppress add` from a shell and the
// running relay's bounce handling never lose each other's changes. A
// Store notices when another process changed the file and reloads it.
package suppress

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/relayctl/relayctl/pkg/events"
)

// Source says why an address is suppressed.
type Source string

// Sources.
const (
	HardBounce Source = "hard-bounce"
	SoftBounce Source = "soft-bounce"
	Manual     Source = "manual"
	Imported   Source = "import"
)

// Entry is one suppressed address, or a whole domain written "@domain".
type Entry struct {
	Address  string    `json:"address"`
	Source   Source    `json:"source"`
	Reason   string    `json:"reason,omitempty"`
	Code     int       `json:"code,omitempty"`
	Enhanced string    `json:"enhanced,omitempty"`
	Added    time.Time `json:"added"`
	// Expires is when the entry stops applying; zero never.
	Expires time.Time `json:"expires,omitzero"`
}

// Active reports whether the entry applies at now.
func (e Entry) Active(now time.Time) bool { return e.Expires.IsZero() || now.Before(e.Expires) }

// Policy says what suppresses an address and what happens to mail for it.
type Policy struct {
	// HardCodes are the bounce codes that suppress at once: enhanced codes
	// ("5.2.1"), prefixes ending in "." or "*" ("5.1.", "5.1.*"), or basic
	// reply codes ("550"). Only 5xx replies are considered.
	HardCodes []string
	// SoftThreshold is how many soft bounces in a row (no delivery in
	// between) suppress an address; 0 never.
	SoftThreshold int
	// SoftPeriod: a run of soft bounces whose first is older than this
	// starts over, so N failures must fall within the period.
	SoftPeriod time.Duration
	// SoftExpiry ends a soft-bounce suppression after this long; 0 never.
	SoftExpiry time.Duration
	// Action is what happens to a message for a suppressed recipient:
	// ActionReject or ActionDrop.
	Action string
}

// Actions.
const (
	// ActionReject refuses suppressed recipients at RCPT TO: 550 5.7.1
	// with the reason (see Reply).
	ActionReject = "reject"
	// ActionDrop accepts them (250) and never delivers them: the relay
	// logs a "suppressed" delivery event instead, and sends no bounce.
	ActionDrop = "drop"
)

// DefaultPolicy: 5.1.x and 5.2.1 are hard; 3 soft bounces within 7 days
// suppress for 30 days; suppressed recipients are rejected.
func DefaultPolicy() Policy {
	return Policy{
		HardCodes:     []string{"5.1.", "5.2.1"},
		SoftThreshold: 3,
		SoftPeriod:    7 * 24 * time.Hour,
		SoftExpiry:    30 * 24 * time.Hour,
		Action:        ActionReject,
	}
}

// Validate checks a policy.
func (p Policy) Validate() error {
	if p.Action != ActionReject && p.Action != ActionDrop {
		return fmt.Errorf("suppress: action %q: want reject or drop", p.Action)
	}
	for _, c := range p.HardCodes {
		if !validCodePattern(c) {
			return fmt.Errorf("suppress: hard bounce code %q: want 5.x.y, a prefix like 5.1. or 5.1.*, or a reply code like 550", c)
		}
	}
	if p.SoftThreshold < 0 || p.SoftPeriod < 0 || p.SoftExpiry < 0 {
		return errors.New("suppress: soft bounce threshold and durations must not be negative")
	}
	return nil
}

func validCodePattern(c string) bool {
	if n, err := strconv.Atoi(c); err == nil {
		return n >= 500 && n <= 599
	}
	c = strings.TrimSuffix(c, "*")
	if !strings.HasPrefix(c, "5.") {
		return false
	}
	for _, p := range strings.Split(strings.TrimSuffix(c, "."), ".") {
		if _, err := strconv.Atoi(p); err != nil {
			return false
		}
	}
	return true
}

// IsHard reports whether a bounce with this reply is a hard bounce.
func (p Policy) IsHard(code int, enhanced string) bool {
	if code < 500 || code > 599 {
		return false
	}
	for _, pat := range p.HardCodes {
		switch {
		case pat == strconv.Itoa(code):
			return true
		case enhanced == "":
		case strings.HasSuffix(pat, "*") && strings.HasPrefix(enhanced, strings.TrimSuffix(pat, "*")):
			return true
		case strings.HasSuffix(pat, ".") && strings.HasPrefix(enhanced, pat):
			return true
		case pat == enhanced:
			return true
		}
	}
	return false
}

// softState counts consecutive soft bounces of one address.
type softState struct {
	Count    int       `json:"count"`
	First    time.Time `json:"first"`
	Last     time.Time `json:"last"`
	Response string    `json:"response,omitempty"`
}

type fileData struct {
	Version int                   `json:"version"`
	Entries []Entry               `json:"entries"`
	Soft    map[string]*softState `json:"soft,omitempty"`
}

// Store is the suppression list in a file; safe for concurrent use, and
// for use by several processes at once.
type Store struct {
	path   string
	policy Policy
	now    func() time.Time

	mu      sync.Mutex
	data    fileData
	stamp   fileStamp
	entries map[string]Entry
}

type fileStamp struct {
	mod  time.Time
	size int64
	ino  uint64
}

// DefaultFile is the list's file for a spool directory.
func DefaultFile(spool string) string { return filepath.Join(spool, "suppress.json") }

// Open opens (or creates on first write) the list at path.
func Open(path string, p Policy, now func() time.Time) (*Store, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if now == nil {
		now = time.Now
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("suppress: %w", err)
	}
	s := &Store{path: path, policy: p, now: now}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.reload(); err != nil {
		return nil, err
	}
	return s, nil
}

// Path is the file the list lives in.
func (s *Store) Path() string { return s.path }

// Policy returns the store's policy.
func (s *Store) Policy() Policy { return s.policy }

// Normalize lower-cases an address (or "@domain") and strips angle
// brackets and a display name.
func Normalize(addr string) (string, error) {
	a := strings.TrimSpace(addr)
	if strings.ContainsAny(a, "\r\n") {
		return "", fmt.Errorf("suppress: %q: CR or LF in address", addr)
	}
	if strings.HasPrefix(a, "@") {
		d := strings.ToLower(strings.TrimSuffix(a[1:], "."))
		if d == "" || strings.ContainsAny(d, "@ <>,") || !strings.Contains(d, ".") {
			return "", fmt.Errorf("suppress: %q is not an address or @domain", addr)
		}
		return "@" + d, nil
	}
	if pa, err := mail.ParseAddress(a); err == nil {
		a = pa.Address
	} else if strings.Count(a, "@") != 1 || strings.ContainsAny(a, " <>,") {
		return "", fmt.Errorf("suppress: %q is not an address or @domain", addr)
	}
	local, domain, _ := strings.Cut(a, "@")
	if local == "" || domain == "" {
		return "", fmt.Errorf("suppress: %q is not an address or @domain", addr)
	}
	return strings.ToLower(a), nil
}

// stat returns the file's identity; zero when absent.
func (s *Store) statFile() (fileStamp, error) {
	fi, err := os.Stat(s.path)
	if errors.Is(err, os.ErrNotExist) {
		return fileStamp{}, nil
	}
	if err != nil {
		return fileStamp{}, fmt.Errorf("suppress: %w", err)
	}
	st := fileStamp{mod: fi.ModTime(), size: fi.Size()}
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		st.ino = sys.Ino
	}
	return st, nil
}

// reload reads the file if it changed since the last read. s.mu held.
func (s *Store) reload() error {
	st, err := s.statFile()
	if err != nil {
		return err
	}
	if s.entries != nil && st == s.stamp {
		return nil
	}
	data := fileData{Version: 1}
	b, err := os.ReadFile(s.path)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return fmt.Errorf("suppress: %w", err)
	default:
		if err := json.Unmarshal(b, &data); err != nil {
			return fmt.Errorf("suppress: %s: %w", s.path, err)
		}
	}
	if data.Soft == nil {
		data.Soft = map[string]*softState{}
	}
	s.data, s.stamp = data, st
	s.entries = make(map[string]Entry, len(data.Entries))
	for _, e := range data.Entries {
		s.entries[e.Address] = e
	}
	return nil
}

// update runs fn on the current data under the file lock and writes the
// result durably.
func (s *Store) update(fn func(d *fileData) (changed bool, err error)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	lock, err := os.OpenFile(s.path+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("suppress: lock: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("suppress: lock: %w", err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if err := s.reload(); err != nil {
		return err
	}
	changed, err := fn(&s.data)
	if err != nil {
		s.entries = nil
		return err
	}
	if !changed {
		return nil
	}
	s.data.Version = 1
	s.data.Entries = s.data.Entries[:0]
	for _, e := range s.entries {
		s.data.Entries = append(s.data.Entries, e)
	}
	slices.SortFunc(s.data.Entries, func(a, b Entry) int { return strings.Compare(a.Address, b.Address) })
	b, err := json.MarshalIndent(&s.data, "", "  ")
	if err != nil {
		return fmt.Errorf("suppress: %w", err)
	}
	if err := writeAtomic(s.path, append(b, '\n')); err != nil {
		s.entries = nil // memory ran ahead of the disk: reread next time
		return err
	}
	s.stamp, err = s.statFile()
	return err
}

func writeAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("suppress: write: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("suppress: write: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("suppress: fsync: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("suppress: write: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("suppress: rename: %w", err)
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return fmt.Errorf("suppress: fsync dir: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("suppress: fsync dir: %w", err)
	}
	return nil
}

// Check reports whether addr is suppressed (itself or its domain).
func (s *Store) Check(addr string) (Entry, bool, error) {
	a, err := Normalize(addr)
	if err != nil {
		return Entry{}, false, nil // not an address we could have listed
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.reload(); err != nil {
		return Entry{}, false, err
	}
	now := s.now()
	if e, ok := s.entries[a]; ok && e.Active(now) {
		return e, true, nil
	}
	if i := strings.LastIndexByte(a, '@'); i > 0 {
		if e, ok := s.entries[a[i:]]; ok && e.Active(now) {
			return e, true, nil
		}
	}
	return Entry{}, false, nil
}

// Add suppresses e.Address (replacing any entry for it). Added defaults
// to now and Source to Manual.
func (s *Store) Add(e Entry) error {
	a, err := Normalize(e.Address)
	if err != nil {
		return err
	}
	e.Address = a
	if e.Added.IsZero() {
		e.Added = s.now().UTC()
	}
	if e.Source == "" {
		e.Source = Manual
	}
	if strings.ContainsAny(e.Reason, "\r\n") {
		e.Reason = oneLine(e.Reason)
	}
	return s.update(func(d *fileData) (bool, error) {
		s.entries[a] = e
		delete(d.Soft, a)
		return true, nil
	})
}

// Remove takes addr off the list (and forgets its soft bounces); it
// reports whether it was listed.
func (s *Store) Remove(addr string) (bool, error) {
	a, err := Normalize(addr)
	if err != nil {
		return false, err
	}
	found := false
	err = s.update(func(d *fileData) (bool, error) {
		_, found = s.entries[a]
		_, soft := d.Soft[a]
		delete(s.entries, a)
		delete(d.Soft, a)
		return found || soft, nil
	})
	return found, err
}

// List returns the entries sorted by address; expired ones too (see
// Entry.Active).
func (s *Store) List() ([]Entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.reload(); err != nil {
		return nil, err
	}
	out := make([]Entry, 0, len(s.entries))
	for _, e := range s.entries {
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b Entry) int { return strings.Compare(a.Address, b.Address) })
	return out, nil
}

// Observe applies the bounce rules to one delivery result and returns
// the entry it created, if any:
//
//   - delivered: forgets the address's soft bounces;
//   - bounced with a hard code (Policy.HardCodes): suppressed now;
//   - bounced otherwise, or expired (gave up on 4xx): a soft bounce;
//     SoftThreshold of them in a row within SoftPeriod suppress it;
//   - deferred: nothing (it is retried; only the final outcome counts).
func (s *Store) Observe(addr string, result events.Result, code int, enhanced, response string) (*Entry, error) {
	a, err := Normalize(addr)
	if err != nil {
		return nil, nil
	}
	var created *Entry
	now := s.now().UTC()
	err = s.update(func(d *fileData) (bool, error) {
		switch result {
		case events.Delivered:
			if _, ok := d.Soft[a]; ok {
				delete(d.Soft, a)
				return true, nil
			}
			return false, nil
		case events.Bounced, events.Expired:
		default:
			return false, nil
		}
		if e, ok := s.entries[a]; ok && e.Active(now) && e.Source != SoftBounce {
			return false, nil // already suppressed for good
		}
		if result == events.Bounced && s.policy.IsHard(code, enhanced) {
			e := Entry{Address: a, Source: HardBounce, Reason: oneLine(response), Code: code, Enhanced: enhanced, Added: now}
			s.entries[a] = e
			delete(d.Soft, a)
			created = &e
			return true, nil
		}
		if s.policy.SoftThreshold <= 0 {
			return false, nil
		}
		st := d.Soft[a]
		if st == nil || (s.policy.SoftPeriod > 0 && now.Sub(st.First) > s.policy.SoftPeriod) {
			st = &softState{First: now}
			d.Soft[a] = st
		}
		st.Count++
		st.Last = now
		st.Response = oneLine(response)
		if st.Count >= s.policy.SoftThreshold {
			e := Entry{Address: a, Source: SoftBounce, Code: code, Enhanced: enhanced, Added: now,
				Reason: fmt.Sprintf("%d soft bounces since %s, last: %s", st.Count, st.First.Format(time.RFC3339), st.Response)}
			if s.policy.SoftExpiry > 0 {
				e.Expires = now.Add(s.policy.SoftExpiry)
			}
			s.entries[a] = e
			delete(d.Soft, a)
			created = &e
		}
		return true, nil
	})
	return created, err
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// Reply is the RCPT TO refusal for a suppressed recipient: 550 5.7.1
// (RFC 3463: delivery not authorized, message refused) with the reason.
func Reply(e Entry) (code int, enhanced [3]int, text string) {
	why := string(e.Source)
	switch e.Source {
	case HardBounce, SoftBounce:
		why += " " + strings.TrimSpace(fmt.Sprintf("%d %s", e.Code, e.Enhanced))
	case Manual, Imported:
		if e.Reason != "" {
			why += ": " + e.Reason
		}
	}
	text = fmt.Sprintf("<%s> is on the suppression list (%s on %s)", strings.TrimPrefix(e.Address, "@"), why, e.Added.Format("2006-01-02"))
	if strings.HasPrefix(e.Address, "@") {
		text = fmt.Sprintf("domain %s is on the suppression list (%s on %s)", e.Address[1:], why, e.Added.Format("2006-01-02"))
	}
	return 550, [3]int{5, 7, 1}, oneLine(text)
}

// Import adds addresses from r: one per line ("#" comments and blank
// lines skipped), optionally followed by ",reason"; the CSV written by
// Export is read back as well. It returns how many were added.
func (s *Store) Import(r io.Reader, source Source) (int, error) {
	if source == "" {
		source = Imported
	}
	var add []Entry
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	line, first := 0, true
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		rec, err := csv.NewReader(strings.NewReader(text)).Read()
		if err != nil {
			return 0, fmt.Errorf("suppress: import line %d: %w", line, err)
		}
		if first && strings.EqualFold(strings.TrimSpace(rec[0]), "address") {
			first = false
			continue // Export's header
		}
		first = false
		e := Entry{Address: rec[0], Source: source}
		if len(rec) == 2 {
			e.Reason = rec[1]
		} else if len(rec) >= 7 { // Export's columns
			e.Source = Source(rec[1])
			e.Reason = rec[2]
			e.Code, _ = strconv.Atoi(rec[3])
			e.Enhanced = rec[4]
			e.Added, _ = time.Parse(time.RFC3339, rec[5])
			e.Expires, _ = time.Parse(time.RFC3339, rec[6])
		}
		a, err := Normalize(e.Address)
		if err != nil {
			return 0, fmt.Errorf("suppress: import line %d: %w", line, err)
		}
		e.Address = a
		add = append(add, e)
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("suppress: import: %w", err)
	}
	now := s.now().UTC()
	err := s.update(func(d *fileData) (bool, error) {
		for _, e := range add {
			if e.Added.IsZero() {
				e.Added = now
			}
			s.entries[e.Address] = e
			delete(d.Soft, e.Address)
		}
		return len(add) > 0, nil
	})
	if err != nil {
		return 0, err
	}
	return len(add), nil
}

// Export writes the list as CSV with a header line.
func (s *Store) Export(w io.Writer) error {
	list, err := s.List()
	if err != nil {
		return err
	}
	cw := csv.NewWriter(w)
	cw.Write([]string{"address", "source", "reason", "code", "enhanced", "added", "expires"})
	for _, e := range list {
		code, exp := "", ""
		if e.Code != 0 {
			code = strconv.Itoa(e.Code)
		}
		if !e.Expires.IsZero() {
			exp = e.Expires.UTC().Format(time.RFC3339)
		}
		cw.Write([]string{e.Address, string(e.Source), e.Reason, code, e.Enhanced, e.Added.UTC().Format(time.RFC3339), exp})
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("suppress: export: %w", err)
	}
	return nil
}
