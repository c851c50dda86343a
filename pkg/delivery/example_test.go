package delivery_test

import (
	"context"
	"fmt"
	"time"

	"github.com/relayctl/relayctl/pkg/delivery"
)

// DeliverNow makes one attempt without a queue (`relayctl send --direct`).
// Here a route points every domain at a local port where nothing listens,
// so the result is a deferral with the connection error.
func ExampleDeliverNow() {
	cfg := delivery.Config{
		Hostname:    "relay.example.org",
		Routes:      map[string]string{"*": "127.0.0.1:1"},
		DialTimeout: time.Second,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, r := range delivery.DeliverNow(ctx, cfg, "app@example.org", []string{"bob@example.net"}, []byte("Subject: hi\r\n\r\nhello\r\n")) {
		fmt.Println(r.Recipient, r.Outcome, r.Enhanced)
	}
	// Output:
	// bob@example.net deferred 4.4.1
}

func ExampleBackoff() {
	b := delivery.DefaultBackoff()
	for attempt := 1; attempt <= 6; attempt++ {
		fmt.Print(b.Base(attempt), " ")
	}
	fmt.Println("… until", b.Lifetime)
	// Output:
	// 5m0s 10m0s 20m0s 40m0s 1h0m0s 1h0m0s … until 120h0m0s
}
