package delivery

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/relayctl/relayctl/pkg/dnsclient"
	"github.com/relayctl/relayctl/pkg/dnstest"
	"github.com/relayctl/relayctl/pkg/queue"
)

// BenchmarkDeliveryThroughput queues b.N messages (fsync on) for a
// loopback sink and measures the time until every one was delivered and
// removed from the queue: queue → MX lookup → SMTP → durable state update.
func BenchmarkDeliveryThroughput(b *testing.B) {
	for _, conc := range []int{1, 10, 50} {
		b.Run(fmt.Sprintf("conc=%d", conc), func(b *testing.B) {
			port := freePort(b)
			s := startSink(b, sinkOpts{ip: "127.0.0.2", port: port})
			dns := dnstest.Start(b, labZone)
			r, _ := dnsclient.New([]string{dns.Addr()}, dnsclient.WithTimeout(time.Second))
			q, err := queue.Open(b.TempDir(), queue.DefaultOptions())
			if err != nil {
				b.Fatal(err)
			}
			defer q.Close()
			body := strings.Repeat("Lorem ipsum dolor sit amet, consectetur adipiscing.\r\n", 60)
			for i := 0; i < b.N; i++ {
				env := &queue.Envelope{From: "app@sender.test", Recipients: []queue.Recipient{{Address: fmt.Sprintf("r%d@example.test", i)}}}
				if _, err := q.Enqueue(env, strings.NewReader(body)); err != nil {
					b.Fatal(err)
				}
			}
			e, err := New(Config{Hostname: "relay.test", Resolver: r, Port: port, Concurrency: conc, PerDomain: conc,
				DialTimeout: time.Second, CommandTimeout: 5 * time.Second}, q)
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
			defer cancel()
			b.ResetTimer()
			start := time.Now()
			done := make(chan struct{})
			go func() { defer close(done); e.Run(ctx) }()
			for q.Len() > 0 && ctx.Err() == nil {
				time.Sleep(time.Millisecond)
			}
			el := time.Since(start)
			b.StopTimer()
			cancel()
			<-done
			if n := len(s.messages()); n != b.N {
				b.Fatalf("sink got %d of %d", n, b.N)
			}
			b.ReportMetric(float64(b.N)/el.Seconds(), "msgs/s")
		})
	}
}
