package queue

import (
	"container/heap"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ErrStorage is wrapped by every error caused by the disk refusing a write
// (ENOSPC, EIO, EROFS…). An SMTP server answers 452 4.3.1 / 451 4.3.0 to
// it and never 250: the message is not queued.
var ErrStorage = errors.New("queue: storage error")

// ErrNotFound is returned for an id that is not (or no longer) queued.
var ErrNotFound = errors.New("queue: message not found")

// ErrClosed is returned after Close.
var ErrClosed = errors.New("queue: closed")

// Options configure a Queue.
type Options struct {
	// Fsync makes every write durable before it returns (file and
	// directory). DefaultOptions sets it; turning it off is only for
	// tests and benchmarks that measure something else.
	Fsync bool
	// Now is the clock (nil → time.Now).
	Now func() time.Time
	// Priority ranks a message; those ranked above 0 (a transactional
	// stream) are handed out by Due and DueN before any other due
	// message, so they overtake a backlog. nil: all equal.
	Priority func(env *Envelope) int
}

// DefaultOptions returns the production options: fsync on.
func DefaultOptions() Options { return Options{Fsync: true} }

// File names in the spool directory. A message <id> is two files:
// <id>.msg (the content, exactly as received) and <id>.env (the envelope
// as JSON). The .env file is the commit record: a message is queued when
// and only when its .env exists. Writes go to a ".tmp-" file first, are
// fsync'd, renamed into place, and the directory is fsync'd.
const (
	msgExt = ".msg"
	envExt = ".env"
	tmpPfx = ".tmp-"
	bad    = ".corrupt"
)

// Queue is a durable spool directory. Its methods are safe for concurrent
// use. Only a small index (id → next due time) lives in memory; envelopes
// and contents are read from disk when asked for, so memory stays flat
// with queue size.
type Queue struct {
	dir  string
	opts Options
	wake chan struct{}

	locks [64]sync.Mutex // per-id write locks, by hash

	mu     sync.Mutex
	closed bool
	index  map[string]*item // every queued id
	// heaps hold the ids that have a due time (not held-only), one heap
	// per stream and class: the urgent ones are messages Options.Priority
	// ranks above 0 (transactional streams), handed out first. Separate
	// heaps per stream let DueStreams pass over a capped stream without
	// walking its backlog. A stream's heap stays once created (streams
	// are few).
	heaps  map[heapKey]*dueHeap
	dirF   *os.File
	dsync  dirSyncer
	reject []string // files found corrupt at Open, for the operator
}

type item struct {
	id     string
	at     time.Time // earliest NextAttempt of a queued/deferred recipient
	pos    int       // index in its due heap, -1 when not in one
	urgent bool      // ranked above 0 by Options.Priority
	stream string    // the envelope's Stream
}

type heapKey struct {
	urgent bool
	stream string
}

// heapOf is the due heap it belongs in.
func (q *Queue) heapOf(it *item) *dueHeap {
	k := heapKey{it.urgent, it.stream}
	h := q.heaps[k]
	if h == nil {
		h = &dueHeap{}
		q.heaps[k] = h
	}
	return h
}

// Open opens (creating with mode 0700) the spool directory dir and
// recovers every message in it. Half-written temporary files from a crash
// are discarded (their message was never acknowledged), content files
// without an envelope likewise. Messages whose delivery was in flight are
// simply queued again: their recipients keep the state of their last
// completed attempt.
func Open(dir string, opts Options) (*Queue, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("queue: create spool %s: %w: %w", dir, ErrStorage, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("queue: open spool %s: %w", dir, err)
	}
	q := &Queue{dir: dir, opts: opts, wake: make(chan struct{}, 1), index: map[string]*item{}, heaps: map[heapKey]*dueHeap{}, dirF: d}
	if err := q.recover(); err != nil {
		d.Close()
		return nil, err
	}
	return q, nil
}

// Corrupt lists the envelope files that could not be read at Open; they
// were renamed to <name>.corrupt and are not delivered.
func (q *Queue) Corrupt() []string { return append([]string(nil), q.reject...) }

// Dir returns the spool directory.
func (q *Queue) Dir() string { return q.dir }

func (q *Queue) recover() error {
	ents, err := os.ReadDir(q.dir)
	if err != nil {
		return fmt.Errorf("queue: read spool %s: %w", q.dir, err)
	}
	envs := map[string]bool{}
	msgs := map[string]bool{}
	changed := false
	for _, e := range ents {
		name := e.Name()
		switch {
		case strings.HasPrefix(name, tmpPfx):
			// A write that never completed: nothing acknowledged it.
			if err := os.Remove(filepath.Join(q.dir, name)); err != nil {
				return fmt.Errorf("queue: recover: remove %s: %w", name, err)
			}
			changed = true
		case strings.HasSuffix(name, envExt):
			envs[strings.TrimSuffix(name, envExt)] = true
		case strings.HasSuffix(name, msgExt):
			msgs[strings.TrimSuffix(name, msgExt)] = true
		}
	}
	for id := range msgs {
		if !envs[id] {
			// Content written but the envelope (the commit record) never
			// was: the message was not acknowledged. Or a Remove that
			// deleted the envelope first was interrupted.
			if err := os.Remove(q.msgPath(id)); err != nil {
				return fmt.Errorf("queue: recover: remove %s: %w", id, err)
			}
			changed = true
		}
	}
	for id := range envs {
		env, err := q.readEnv(id)
		if err == nil && !msgs[id] {
			err = errors.New("content file missing")
		}
		if err == nil && env.ID != id {
			err = fmt.Errorf("envelope id %q does not match file name", env.ID)
		}
		if err != nil {
			// Not something we wrote (renames are atomic): keep it for the
			// operator but out of the way.
			if rerr := os.Rename(q.envPath(id), q.envPath(id)+bad); rerr != nil {
				return fmt.Errorf("queue: recover %s: %v; set aside: %w", id, err, rerr)
			}
			q.reject = append(q.reject, id+envExt+": "+err.Error())
			changed = true
			continue
		}
		if !env.Pending() {
			// Finished but the removal was interrupted.
			if err := q.removeFiles(id); err != nil {
				return err
			}
			continue
		}
		q.setIndex(id, env)
	}
	if changed && q.opts.Fsync {
		if err := q.syncDir(); err != nil {
			return err
		}
	}
	return nil
}

func (q *Queue) msgPath(id string) string { return filepath.Join(q.dir, id+msgExt) }
func (q *Queue) envPath(id string) string { return filepath.Join(q.dir, id+envExt) }

func (q *Queue) lock(id string) *sync.Mutex {
	h := fnv.New32a()
	h.Write([]byte(id))
	return &q.locks[h.Sum32()%uint32(len(q.locks))]
}

// lockKnown takes id's lock and returns its unlock, or ErrNotFound (lock
// released) when id is not a queued message.
func (q *Queue) lockKnown(id string) (unlock func(), err error) {
	if !validID(id) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	l := q.lock(id)
	l.Lock()
	if !q.known(id) {
		l.Unlock()
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return l.Unlock, nil
}

// NewID returns a fresh queue id: time-ordered, unique, safe as a file name.
func NewID(now time.Time) string {
	var b [5]byte
	_, _ = rand.Read(b[:])
	return strings.ToUpper(strconv.FormatInt(now.UnixMicro(), 36)) + hex.EncodeToString(b[:])
}

// validID accepts ids that are safe as file names.
func validID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// Enqueue stores a message. It assigns env.ID when empty, sets Received
// (when zero) and Size. When it returns nil, the content and the envelope
// are on disk and fsync'd, file and directory: the caller may answer 250.
// On any error nothing of the message is left behind.
func (q *Queue) Enqueue(env *Envelope, content io.Reader) (string, error) {
	if env == nil || len(env.Recipients) == 0 {
		return "", errors.New("queue: enqueue: no recipients")
	}
	now := q.opts.Now()
	if env.ID == "" {
		env.ID = NewID(now)
	} else if !validID(env.ID) {
		return "", fmt.Errorf("queue: enqueue: invalid id %q", env.ID)
	}
	if env.Received.IsZero() {
		env.Received = now
	}
	for i := range env.Recipients {
		if env.Recipients[i].State == "" {
			env.Recipients[i].State = StateQueued
		}
	}
	id := env.ID
	if err := q.checkOpen(); err != nil {
		return "", err
	}
	l := q.lock(id)
	l.Lock()
	defer l.Unlock()
	q.mu.Lock()
	_, exists := q.index[id]
	q.mu.Unlock()
	if exists {
		return "", fmt.Errorf("queue: enqueue: id %s already queued", id)
	}

	n, err := q.writeFile(q.msgPath(id), func(w io.Writer) error {
		_, err := io.Copy(w, content)
		return err
	})
	if err != nil {
		return "", err
	}
	env.Size = n
	if err := q.writeEnv(env); err != nil {
		os.Remove(q.msgPath(id))
		return "", err
	}
	if q.opts.Fsync {
		// One directory fsync makes both renames durable.
		if err := q.syncDir(); err != nil {
			os.Remove(q.envPath(id))
			os.Remove(q.msgPath(id))
			return "", err
		}
	}
	q.setIndex(id, env)
	return id, nil
}

// writeFile writes path atomically: temp file, fsync, rename. The
// directory is not fsync'd (the caller does, once for several renames).
// Errors from the disk wrap ErrStorage; the temp file is removed.
func (q *Queue) writeFile(path string, fill func(io.Writer) error) (int64, error) {
	f, err := os.CreateTemp(q.dir, tmpPfx+"*")
	if err != nil {
		return 0, fmt.Errorf("queue: create temp file: %w: %w", ErrStorage, err)
	}
	tmp := f.Name()
	fail := func(what string, err error, storage bool) (int64, error) {
		f.Close()
		os.Remove(tmp)
		if storage {
			return 0, fmt.Errorf("queue: %s %s: %w: %w", what, filepath.Base(path), ErrStorage, err)
		}
		return 0, fmt.Errorf("queue: %s %s: %w", what, filepath.Base(path), err)
	}
	cw := &countWriter{w: f}
	if err := fill(cw); err != nil {
		// A read error from the client's stream is not a storage error;
		// a write error is.
		return fail("write", err, cw.werr != nil)
	}
	if q.opts.Fsync {
		if err := f.Sync(); err != nil {
			return fail("fsync", err, true)
		}
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return 0, fmt.Errorf("queue: close %s: %w: %w", filepath.Base(path), ErrStorage, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return 0, fmt.Errorf("queue: rename %s: %w: %w", filepath.Base(path), ErrStorage, err)
	}
	return cw.n, nil
}

type countWriter struct {
	w    io.Writer
	n    int64
	werr error
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	if err != nil {
		c.werr = err
	}
	return n, err
}

func (q *Queue) writeEnv(env *Envelope) error {
	b, err := json.MarshalIndent(env, "", "  ")
	if err != nil {
		return fmt.Errorf("queue: encode envelope %s: %w", env.ID, err)
	}
	b = append(b, '\n')
	_, err = q.writeFile(q.envPath(env.ID), func(w io.Writer) error {
		_, err := w.Write(b)
		return err
	})
	return err
}

// syncDir makes the renames and removals done so far durable. Concurrent
// callers share fsyncs (group commit): a caller waits for one fsync that
// started after it asked, so many sessions enqueueing at once cost far
// fewer than one directory fsync each.
func (q *Queue) syncDir() error {
	if err := q.dsync.sync(q.dirF); err != nil {
		return fmt.Errorf("queue: fsync spool directory: %w: %w", ErrStorage, err)
	}
	return nil
}

type dirSyncer struct {
	mu      sync.Mutex
	cond    *sync.Cond
	asked   uint64 // generations requested
	done    uint64 // generations covered by a completed fsync
	running bool
	err     error // result of the last completed fsync
}

func (s *dirSyncer) sync(f *os.File) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cond == nil {
		s.cond = sync.NewCond(&s.mu)
	}
	s.asked++
	mine := s.asked
	for s.done < mine {
		if s.running {
			s.cond.Wait()
			continue
		}
		// Everything asked so far is covered by an fsync starting now.
		s.running = true
		target := s.asked
		s.mu.Unlock()
		err := f.Sync()
		s.mu.Lock()
		s.running = false
		s.done, s.err = target, err
		s.cond.Broadcast()
	}
	return s.err
}

func (q *Queue) readEnv(id string) (*Envelope, error) {
	b, err := os.ReadFile(q.envPath(id))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("queue: read envelope %s: %w", id, err)
	}
	var env Envelope
	if err := json.Unmarshal(b, &env); err != nil {
		return nil, fmt.Errorf("queue: decode envelope %s: %w", id, err)
	}
	return &env, nil
}

func (q *Queue) checkOpen() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return ErrClosed
	}
	return nil
}

func (q *Queue) known(id string) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	_, ok := q.index[id]
	return ok
}

// Get returns a copy of the envelope of id.
func (q *Queue) Get(id string) (*Envelope, error) {
	if !validID(id) || !q.known(id) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return q.readEnv(id)
}

// Content opens the content of id. The file stays readable even if the
// message is removed while it is open.
func (q *Queue) Content(id string) (io.ReadCloser, error) {
	if !validID(id) || !q.known(id) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	f, err := os.Open(q.msgPath(id))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("queue: open content %s: %w", id, err)
	}
	return f, nil
}

// Update reads the envelope of id, calls fn on it and durably rewrites it
// (temp file, fsync, rename, directory fsync). If fn returns an error
// nothing is written. If afterwards no recipient is pending, the message
// is removed from the queue.
func (q *Queue) Update(id string, fn func(*Envelope) error) error {
	if err := q.checkOpen(); err != nil {
		return err
	}
	unlock, err := q.lockKnown(id)
	if err != nil {
		return err
	}
	defer unlock()
	env, err := q.readEnv(id)
	if err != nil {
		return err
	}
	if err := fn(env); err != nil {
		return err
	}
	env.ID = id
	if !env.Pending() {
		return q.remove(id)
	}
	if err := q.writeEnv(env); err != nil {
		return err
	}
	if q.opts.Fsync {
		if err := q.syncDir(); err != nil {
			return err
		}
	}
	q.setIndex(id, env)
	return nil
}

// Remove deletes a message whatever the state of its recipients.
func (q *Queue) Remove(id string) error {
	if err := q.checkOpen(); err != nil {
		return err
	}
	unlock, err := q.lockKnown(id)
	if err != nil {
		return err
	}
	defer unlock()
	return q.remove(id)
}

// remove deletes the envelope (the commit record) first, then the content,
// so a crash in between leaves an orphan content file that Open discards.
func (q *Queue) remove(id string) error {
	if err := q.removeFiles(id); err != nil {
		return err
	}
	q.mu.Lock()
	if it, ok := q.index[id]; ok {
		if it.pos >= 0 {
			heap.Remove(q.heapOf(it), it.pos)
		}
		delete(q.index, id)
	}
	q.mu.Unlock()
	return nil
}

func (q *Queue) removeFiles(id string) error {
	if err := os.Remove(q.envPath(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("queue: remove %s: %w: %w", id, ErrStorage, err)
	}
	if err := os.Remove(q.msgPath(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("queue: remove %s: %w: %w", id, ErrStorage, err)
	}
	if q.opts.Fsync {
		return q.syncDir()
	}
	return nil
}

// List returns every queued envelope, oldest first. It reads them all
// from disk; meant for operators, not for the delivery loop.
func (q *Queue) List() ([]*Envelope, error) {
	q.mu.Lock()
	ids := make([]string, 0, len(q.index))
	for id := range q.index {
		ids = append(ids, id)
	}
	q.mu.Unlock()
	out := make([]*Envelope, 0, len(ids))
	for _, id := range ids {
		env, err := q.readEnv(id)
		if errors.Is(err, ErrNotFound) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, env)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Received.Equal(out[j].Received) {
			return out[i].Received.Before(out[j].Received)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// Len returns the number of queued messages.
func (q *Queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.index)
}

// Due returns the ids of messages with a queued or deferred recipient
// whose NextAttempt is at or before now (held recipients are skipped),
// earliest first. It costs O(k log k) for k due messages, whatever the
// queue size.
func (q *Queue) Due(now time.Time) []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []string
	for _, urgent := range []bool{true, false} { // urgent ones first
		var its []*item
		for k, hp := range q.heaps {
			if k.urgent != urgent {
				continue
			}
			h := *hp
			// Walk the heap from the root, descending only into nodes
			// that are due: the children of a node are never earlier.
			stack := []int{0}
			for len(stack) > 0 {
				i := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				if i >= len(h) || h[i].at.After(now) {
					continue
				}
				its = append(its, h[i])
				stack = append(stack, 2*i+1, 2*i+2)
			}
		}
		sort.Slice(its, func(i, j int) bool { return its[i].at.Before(its[j].at) })
		for _, it := range its {
			out = append(out, it.id)
		}
	}
	return out
}

// DueN returns up to n ids of due messages, earliest first, in
// O(n log n) whatever the queue size and however many are due: what a
// scheduler with n free slots needs.
func (q *Queue) DueN(now time.Time, n int) []string {
	due := q.DueStreams(now, n, nil)
	out := make([]string, len(due))
	for i, d := range due {
		out[i] = d.ID
	}
	return out
}

// Due is a due message and its delivery stream.
type Due struct {
	ID     string
	Stream string
}

// DueStreams is DueN that leaves out the messages of the streams in
// skip (those at their cap of deliveries in flight), so a capped backlog
// does not hide other streams' due messages. Each stream has its own
// heaps, so a skipped stream costs nothing however many it has due.
func (q *Queue) DueStreams(now time.Time, n int, skip map[string]bool) []Due {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := q.dueWalk(true, now, n, nil, skip) // urgent (high-priority) messages first
	return q.dueWalk(false, now, n, out, skip)
}

// dueWalk appends to out the due messages of the urgent or the other
// heaps, except skipped streams', earliest first, until out holds n.
// q.mu held.
func (q *Queue) dueWalk(urgent bool, now time.Time, n int, out []Due, skip map[string]bool) []Due {
	// Best-first walk of the heaps: a frontier of heap positions ordered
	// by due time; a node's children enter when it is taken.
	front := &frontier{}
	for k, h := range q.heaps {
		if k.urgent == urgent && !skip[k.stream] && len(*h) > 0 {
			front.ps = append(front.ps, heapPos{*h, 0})
		}
	}
	heap.Init(front)
	for len(out) < n && front.Len() > 0 {
		p := heap.Pop(front).(heapPos)
		it := p.h[p.i]
		if it.at.After(now) {
			break
		}
		out = append(out, Due{ID: it.id, Stream: it.stream})
		for _, c := range []int{2*p.i + 1, 2*p.i + 2} {
			if c < len(p.h) {
				heap.Push(front, heapPos{p.h, c})
			}
		}
	}
	return out
}

type heapPos struct {
	h dueHeap
	i int
}

type frontier struct{ ps []heapPos }

func (f *frontier) Len() int { return len(f.ps) }
func (f *frontier) Less(i, j int) bool {
	return f.ps[i].h[f.ps[i].i].at.Before(f.ps[j].h[f.ps[j].i].at)
}
func (f *frontier) Swap(i, j int) { f.ps[i], f.ps[j] = f.ps[j], f.ps[i] }
func (f *frontier) Push(x any)    { f.ps = append(f.ps, x.(heapPos)) }
func (f *frontier) Pop() any {
	x := f.ps[len(f.ps)-1]
	f.ps = f.ps[:len(f.ps)-1]
	return x
}

// NextDue returns the earliest time anything becomes due, and false when
// nothing is waiting (empty queue or only held recipients).
func (q *Queue) NextDue() (time.Time, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var at time.Time
	ok := false
	for _, h := range q.heaps {
		if len(*h) > 0 && (!ok || (*h)[0].at.Before(at)) {
			at, ok = (*h)[0].at, true
		}
	}
	return at, ok
}

// Wake returns a channel that receives after an Enqueue or Update made
// something due sooner than before. It has a buffer of one: a scheduler
// that was busy still sees the signal.
func (q *Queue) Wake() <-chan struct{} { return q.wake }

// dueAt is the earliest attempt time of a pending recipient, false when
// only held (or done) recipients remain.
func dueAt(env *Envelope) (time.Time, bool) {
	var at time.Time
	ok := false
	for _, r := range env.Recipients {
		if r.State != StateQueued && r.State != StateDeferred {
			continue
		}
		if !ok || r.NextAttempt.Before(at) {
			at, ok = r.NextAttempt, true
		}
	}
	return at, ok
}

func (q *Queue) setIndex(id string, env *Envelope) {
	at, ok := dueAt(env)
	urgent := q.opts.Priority != nil && q.opts.Priority(env) > 0
	q.mu.Lock()
	it, exists := q.index[id]
	if !exists {
		it = &item{id: id, pos: -1}
		q.index[id] = it
	}
	if it.pos >= 0 && (it.urgent != urgent || it.stream != env.Stream) { // its priority or stream changed
		heap.Remove(q.heapOf(it), it.pos)
	}
	it.urgent = urgent
	it.stream = env.Stream
	h := q.heapOf(it)
	sooner := false
	if ok {
		sooner = len(*h) == 0 || at.Before((*h)[0].at) || (it.pos == 0) || urgent
		it.at = at
		if it.pos >= 0 {
			heap.Fix(h, it.pos)
		} else {
			heap.Push(h, it)
		}
	} else if it.pos >= 0 {
		heap.Remove(h, it.pos)
	}
	q.mu.Unlock()
	if sooner {
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
}

// Close releases the spool directory. Messages stay on disk.
func (q *Queue) Close() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return nil
	}
	q.closed = true
	return q.dirF.Close()
}

// dueHeap is a min-heap of items by due time.
type dueHeap []*item

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h dueHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].pos = i
	h[j].pos = j
}
func (h *dueHeap) Push(x any) {
	it := x.(*item)
	it.pos = len(*h)
	*h = append(*h, it)
}
func (h *dueHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	it.pos = -1
	return it
}
