package summary

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/relayctl/relayctl/pkg/events"
)

func BenchmarkSummarize(b *testing.B) {
	var buf bytes.Buffer
	w := events.NewWriter(&buf)
	for i := range 100000 {
		r := events.Delivered
		if i%20 == 0 {
			r = events.Deferred
		}
		w.Write(events.Event{Time: t0.Add(time.Duration(i) * time.Second), Queued: t0, QueueID: fmt.Sprint("q", i), Recipient: "u@d.example", Domain: fmt.Sprint("d", i%50, ".example"), Result: r, Code: 250})
	}
	data := buf.Bytes()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Summarize(bytes.NewReader(data), time.Time{}, time.Time{}, 5); err != nil {
			b.Fatal(err)
		}
	}
}
