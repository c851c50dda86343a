package smtpd_test

import (
	"context"
	"log"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/relayctl/relayctl/pkg/queue"
	"github.com/relayctl/relayctl/pkg/smtpd"
)

// A submission server on loopback that lets the local host relay without
// AUTH and one application user with AUTH.
func ExampleNew() {
	q, err := queue.Open(os.TempDir()+"/relayctl-example-spool", queue.DefaultOptions())
	if err != nil {
		log.Fatal(err)
	}
	defer q.Close()
	hash, _ := smtpd.HashPassword("app password")
	_, local, _ := net.ParseCIDR("127.0.0.0/8")
	srv, err := smtpd.New(smtpd.Config{
		Hostname:        "relay.example.com",
		Users:           []smtpd.User{{Name: "webapp", PasswordHash: hash, AllowedSenders: []string{"example.com"}}},
		TrustedNetworks: []*net.IPNet{local},
	}, q, slog.Default())
	if err != nil {
		log.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go srv.Serve(l, smtpd.ModePlain, nil)
	// … later, on SIGTERM:
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = srv.Shutdown(ctx)
}
