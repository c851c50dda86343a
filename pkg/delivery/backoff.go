package delivery

import (
	"math/rand/v2"
	"time"
)

// Backoff is the retry schedule for temporarily failed recipients
// (RFC 5321 §4.5.4.1: retry, with a give-up time of at least 4-5 days).
type Backoff struct {
	// Initial is the wait after the first failed attempt (default 5m).
	Initial time.Duration
	// Max caps the wait between attempts (default 1h).
	Max time.Duration
	// Lifetime is how long a message may stay queued before the
	// recipient expires and bounces (default 120h, 5 days).
	Lifetime time.Duration
	// Jitter spreads each wait by ± this fraction (0.2 in DefaultBackoff;
	// 0 is none), so a burst of deferred messages does not retry in
	// lockstep.
	Jitter float64
}

// DefaultBackoff is the Postfix-like schedule: about 5 minutes, doubling,
// capped at an hour, giving up after 5 days.
func DefaultBackoff() Backoff {
	return Backoff{Initial: 5 * time.Minute, Max: time.Hour, Lifetime: 120 * time.Hour, Jitter: 0.2}
}

func (b Backoff) withDefaults() Backoff {
	d := DefaultBackoff()
	if b == (Backoff{}) {
		return d // Config{} gets the whole default schedule, jitter included
	}
	if b.Initial <= 0 {
		b.Initial = d.Initial
	}
	if b.Max <= 0 {
		b.Max = d.Max
	}
	if b.Max < b.Initial {
		b.Max = b.Initial
	}
	if b.Lifetime <= 0 {
		b.Lifetime = d.Lifetime
	}
	b.Jitter = min(max(b.Jitter, 0), 1) // 0: none; 1: anywhere in [0, 2×wait]
	return b
}

// Base is the wait after the attempt-th failed attempt (1-based) before
// jitter: Initial·2^(attempt-1), capped at Max.
func (b Backoff) Base(attempt int) time.Duration {
	b = b.withDefaults()
	d := b.Initial
	for i := 1; i < attempt && d < b.Max; i++ {
		d *= 2
	}
	return min(d, b.Max)
}

// Delay is Base(attempt) spread uniformly by ±Jitter.
func (b Backoff) Delay(attempt int) time.Duration {
	b = b.withDefaults()
	d := b.Base(attempt)
	if b.Jitter == 0 {
		return d
	}
	f := 1 + b.Jitter*(2*rand.Float64()-1)
	return time.Duration(float64(d) * f)
}
