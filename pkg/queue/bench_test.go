package queue

import (
	"runtime"
	"strings"
	"testing"
	"time"
)

var benchBody = strings.Repeat("Lorem ipsum dolor sit amet, consectetur adipiscing.\r\n", 60) // ~3 KiB

// BenchmarkEnqueue measures an acknowledged (fsync'd) Enqueue.
func BenchmarkEnqueue(b *testing.B) {
	q, err := Open(b.TempDir(), DefaultOptions())
	if err != nil {
		b.Fatal(err)
	}
	defer q.Close()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := q.Enqueue(testEnv("r@example.com"), strings.NewReader(benchBody)); err != nil {
			b.Fatal(err)
		}
	}
}

func fill(b *testing.B, n int) (*Queue, time.Time) {
	b.Helper()
	q, err := Open(b.TempDir(), Options{Fsync: false})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { q.Close() })
	now := time.Now()
	for i := 0; i < n; i++ {
		env := testEnv("r@example.com")
		env.Recipients[0].State = StateDeferred
		// 2% due now, the rest spread over the next day.
		env.Recipients[0].NextAttempt = now.Add(time.Duration(i%100-1) * 15 * time.Minute)
		if _, err := q.Enqueue(env, strings.NewReader(benchBody)); err != nil {
			b.Fatal(err)
		}
	}
	return q, now
}

// BenchmarkDue20k measures Due on a queue of 20,000 messages of which 400
// are due.
func BenchmarkDue20k(b *testing.B) {
	q, now := fill(b, 20000)
	b.ResetTimer()
	for b.Loop() {
		if n := len(q.Due(now)); n != 400 {
			b.Fatalf("Due = %d", n)
		}
	}
}

// BenchmarkMemory20k reports the heap the queue holds for 20,000 queued
// messages (bodies stay on disk), and how long Open takes to recover them.
func BenchmarkMemory20k(b *testing.B) {
	for b.Loop() {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		q, _ := fill(b, 20000)
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/20000, "heapB/msg")
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "heapMiB/20k")
		runtime.KeepAlive(q)
		// Recovery time: reopening the spool reads every envelope.
		q.Close()
		start := time.Now()
		q2, err := Open(q.Dir(), DefaultOptions())
		if err != nil || q2.Len() != 20000 {
			b.Fatalf("reopen: %v, %d messages", err, q2.Len())
		}
		b.ReportMetric(float64(time.Since(start).Milliseconds()), "reopen-ms")
		q2.Close()
	}
}

// BenchmarkEnqueueParallel measures acknowledged Enqueues from many
// concurrent sessions (directory fsyncs are shared).
func BenchmarkEnqueueParallel(b *testing.B) {
	q, err := Open(b.TempDir(), DefaultOptions())
	if err != nil {
		b.Fatal(err)
	}
	defer q.Close()
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := q.Enqueue(testEnv("r@example.com"), strings.NewReader(benchBody)); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkDueN20k: the scheduler's query for 40 slots on 20,000 messages.
func BenchmarkDueN20k(b *testing.B) {
	q, now := fill(b, 20000)
	b.ResetTimer()
	for b.Loop() {
		if n := len(q.DueN(now, 40)); n != 40 {
			b.Fatalf("DueN = %d", n)
		}
	}
}

// BenchmarkDueStreamsCapped5k: the scheduler's query for 20 slots when a
// capped stream has 5,000 due messages in front of 20 of another stream
// (the walk passes over every capped one).
func BenchmarkDueStreamsCapped5k(b *testing.B) {
	q, err := Open(b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer q.Close()
	now := time.Now()
	for i := range 5020 {
		env := testEnv("r@example.com")
		env.Stream = "bulk"
		if i >= 5000 {
			env.Stream = "other"
		}
		env.Recipients[0].NextAttempt = now.Add(-time.Hour + time.Duration(i)*time.Millisecond)
		if _, err := q.Enqueue(env, strings.NewReader(benchBody)); err != nil {
			b.Fatal(err)
		}
	}
	skip := map[string]bool{"bulk": true}
	b.ResetTimer()
	for b.Loop() {
		if n := len(q.DueStreams(now, 20, skip)); n != 20 {
			b.Fatalf("DueStreams = %d", n)
		}
	}
}
