package submit

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/relayctl/relayctl/pkg/smtptest"
)

var msg = []byte("From: a@example.com\r\nTo: b@example.org\r\nSubject: t\r\n\r\nline one\r\n.leading dot\r\n")

func TestSendPlain(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{})
	res, err := Send(context.Background(), Options{Addr: srv.Addr, Hello: "client.test"}, "a@example.com", []string{"b@example.org", "c@example.org"}, msg)
	if err != nil {
		t.Fatal(err)
	}
	if res.TLS || res.Refused() != 0 || res.Data == nil || res.Data.Code != 250 {
		t.Fatalf("result %+v", res)
	}
	got := srv.Wait(t, 1, 5*time.Second)[0]
	if string(got.Data) != string(msg) {
		t.Errorf("message changed in transit:\n%q\nwant\n%q", got.Data, msg)
	}
	if got.From != "a@example.com" || strings.Join(got.To, ",") != "b@example.org,c@example.org" {
		t.Errorf("envelope %q %v", got.From, got.To)
	}
}

func TestStartTLSWhenOffered(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{StartTLS: true, Users: map[string]string{"app": "s3cret"}})
	res, err := Send(context.Background(), Options{Addr: srv.Addr, RootCAs: srv.RootCAs, Username: "app", Password: "s3cret"}, "a@example.com", []string{"b@example.org"}, msg)
	if err != nil {
		t.Fatal(err)
	}
	if !res.TLS || res.Auth != "PLAIN" || res.TLSVersion == "" {
		t.Errorf("result %+v", res)
	}
	if m := srv.Wait(t, 1, 5*time.Second)[0]; !m.TLS || m.User != "app" {
		t.Errorf("server saw TLS=%v user=%q", m.TLS, m.User)
	}
}

func TestStartTLSUntrustedCertificate(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{StartTLS: true})
	_, err := Send(context.Background(), Options{Addr: srv.Addr}, "a@example.com", []string{"b@example.org"}, msg)
	var ce *ConnError
	if !errors.As(err, &ce) || ce.Stage != "STARTTLS handshake" {
		t.Fatalf("err %v, want a STARTTLS handshake ConnError", err)
	}
	res, err := Send(context.Background(), Options{Addr: srv.Addr, InsecureSkipVerify: true}, "a@example.com", []string{"b@example.org"}, msg)
	if err != nil || !res.TLS {
		t.Fatalf("insecure-skip-verify: %v %+v", err, res)
	}
}

func TestImplicitTLS(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{ImplicitTLS: true})
	res, err := Send(context.Background(), Options{Addr: srv.Addr, ImplicitTLS: true, RootCAs: srv.RootCAs}, "a@example.com", []string{"b@example.org"}, msg)
	if err != nil || !res.TLS {
		t.Fatalf("%v %+v", err, res)
	}
}

func TestRequireTLS(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{})
	_, err := Send(context.Background(), Options{Addr: srv.Addr, RequireTLS: true}, "a@example.com", []string{"b@example.org"}, msg)
	if !errors.Is(err, ErrPolicy) {
		t.Fatalf("err %v", err)
	}
	if len(srv.Messages()) != 0 {
		t.Error("message sent in clear text")
	}
}

func TestAuthFailure(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{Users: map[string]string{"app": "right"}})
	_, err := Send(context.Background(), Options{Addr: srv.Addr, Username: "app", Password: "wrong"}, "a@example.com", []string{"b@example.org"}, msg)
	var re *ReplyError
	if !errors.As(err, &re) || re.Reply.Code != 535 || re.Reply.Enhanced != "5.7.8" {
		t.Fatalf("err %v", err)
	}
	_, err = Send(context.Background(), Options{Addr: srv.Addr}, "a@example.com", []string{"b@example.org"}, msg)
	if !errors.As(err, &re) || re.Command != "MAIL" {
		t.Fatalf("unauthenticated: err %v", err)
	}
}

func TestPerRecipientRefusal(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{})
	srv.SetHook(func(cmd, arg string) error {
		if cmd == "RCPT" && arg == "gone@example.org" {
			return smtptest.Reply(550, [3]int{5, 1, 1}, "no such user")
		}
		return nil
	})
	res, err := Send(context.Background(), Options{Addr: srv.Addr}, "a@example.com", []string{"b@example.org", "gone@example.org"}, msg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Refused() != 1 || !res.Recipients[0].Accepted || res.Recipients[1].Accepted {
		t.Fatalf("%+v", res.Recipients)
	}
	if r := res.Recipients[1].Reply; r.Code != 550 || r.Enhanced != "5.1.1" || r.Text != "no such user" {
		t.Errorf("reply %+v", r)
	}
	// All refused: no DATA at all.
	res, err = Send(context.Background(), Options{Addr: srv.Addr}, "a@example.com", []string{"gone@example.org"}, msg)
	if err != nil || res.Data != nil || res.Refused() != 1 {
		t.Fatalf("%v %+v", err, res)
	}
	if len(srv.Messages()) != 1 {
		t.Errorf("%d messages, want 1", len(srv.Messages()))
	}
}

func TestDataRefused(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{})
	srv.SetHook(func(cmd, _ string) error {
		if cmd == "DATA" {
			return smtptest.Reply(554, [3]int{5, 7, 1}, "spam")
		}
		return nil
	})
	res, err := Send(context.Background(), Options{Addr: srv.Addr}, "a@example.com", []string{"b@example.org"}, msg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Refused() != 1 || res.Recipients[0].Reply.Code != 554 {
		t.Fatalf("%+v", res)
	}
}

func TestUnreachable(t *testing.T) {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	_, err := Send(context.Background(), Options{Addr: addr, Timeout: 2 * time.Second}, "a@example.com", []string{"b@example.org"}, msg)
	var ce *ConnError
	if !errors.As(err, &ce) || ce.Stage != "connect" {
		t.Fatalf("err %v", err)
	}
}

func TestParseReply(t *testing.T) {
	for _, tc := range []struct {
		code int
		msg  string
		want Reply
	}{
		{250, "2.0.0 Ok: queued as ABC123", Reply{250, "2.0.0", "Ok: queued as ABC123"}},
		{550, "5.1.1 no\n5.1.1 such user", Reply{550, "5.1.1", "no; such user"}},
		{250, "4.0.0 mismatched class", Reply{250, "", "4.0.0 mismatched class"}},
		{421, "closing", Reply{421, "", "closing"}},
	} {
		if got := parseReply(tc.code, tc.msg); got != tc.want {
			t.Errorf("%q: %+v, want %+v", tc.msg, got, tc.want)
		}
	}
	if queueID("2.0.0 Ok: queued as ABC123") != "ABC123" || queueID("OK id=1x-2") != "1x-2" || queueID("OK") != "" {
		t.Error("queueID")
	}
}
