package dnsbl

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/relayctl/relayctl/pkg/dnsclient"
	"github.com/relayctl/relayctl/pkg/dnstest"
)

// BenchmarkCheck1000x3 checks 1,000 IPs against 3 lists on the test DNS
// server with 10 ms of delay per answer, and reports the wall time
// against the physical bound (queries ÷ concurrency) × delay as "ratio"
// (1.0 is perfect). Run it on its own, e.g.
//
//	go test ./pkg/dnsbl -run '^$' -bench Check1000x3 -benchtime 3x
func BenchmarkCheck1000x3(b *testing.B) {
	for _, conc := range []int{64, 256} {
		b.Run(fmt.Sprintf("concurrency=%d", conc), func(b *testing.B) {
			const delay = 10 * time.Millisecond
			srv := dnstest.Start(b, lists)
			srv.SetDelay(delay)
			r, err := dnsclient.New([]string{srv.Addr()}, dnsclient.WithTimeout(2*time.Second))
			if err != nil {
				b.Fatal(err)
			}
			zs, err := ParseZones([]string{"zen.spamhaus.org", "b.barracudacentral.org", "bl.spamcop.net"})
			if err != nil {
				b.Fatal(err)
			}
			c := &Checker{Resolver: r, Zones: zs, Concurrency: conc}
			tg, err := ParseTarget("10.1.0.0/22", false)
			if err != nil {
				b.Fatal(err)
			}
			var ts []Target
			for _, a := range tg.Addrs()[:1000] {
				ts = append(ts, Target{Input: a.String(), Addr: a})
			}
			queries := 1000 * len(zs)
			bound := time.Duration(float64(queries) / float64(conc) * float64(delay))
			b.ResetTimer()
			start := time.Now()
			for range b.N {
				res := c.Check(context.Background(), ts)
				if res.Summary.Queries != queries || res.Summary.Errors != 0 {
					b.Fatalf("%+v", res.Summary)
				}
			}
			wall := time.Since(start) / time.Duration(b.N)
			b.ReportMetric(float64(wall.Milliseconds()), "wall-ms")
			b.ReportMetric(float64(bound.Milliseconds()), "bound-ms")
			b.ReportMetric(float64(wall)/float64(bound), "ratio")
		})
	}
}
