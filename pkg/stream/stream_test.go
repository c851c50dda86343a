package stream

import (
	"net/mail"
	"testing"
)

func TestClassify(t *testing.T) {
	p, err := New(Config{
		Users:         map[string]string{"newsletter": "bulk"},
		SenderDomains: map[string]string{"news.example.com": "bulk"},
	})
	if err != nil {
		t.Fatal(err)
	}
	h := func(v string) mail.Header {
		if v == "" {
			return mail.Header{}
		}
		return mail.Header{"X-Relayctl-Stream": {v}}
	}
	for _, tc := range []struct {
		hdr, user, sender, want string
	}{
		{"Bulk", "", "a@example.com", "bulk"},
		{"transactional", "newsletter", "a@news.example.com", "transactional"}, // header wins
		{"nonsense", "newsletter", "a@example.com", "bulk"},                    // unknown header value ignored
		{"", "newsletter", "a@example.com", "bulk"},
		{"", "app", "promo@mx.news.example.com", "bulk"},
		{"", "app", "receipts@example.com", "transactional"},
		{"", "", "", "transactional"},
	} {
		if got := p.Classify(h(tc.hdr), tc.user, tc.sender); got != tc.want {
			t.Errorf("%+v: %s", tc, got)
		}
	}
	if s := p.Get("bulk"); s.Priority != 0 || p.Priority("") != 10 {
		t.Errorf("bulk %+v", s)
	}
	if s := p.Get("legacy"); s.Name != "legacy" || s.Priority != 10 {
		t.Errorf("unknown stream %+v", s)
	}
}

func TestConfigErrors(t *testing.T) {
	for name, cfg := range map[string]Config{
		"dup":                   {Streams: []Stream{{Name: "a"}, {Name: "A"}}, Default: "a"},
		"no default":            {Streams: []Stream{{Name: "a"}}},
		"bad user":              {Users: map[string]string{"u": "nope"}},
		"bad name":              {Streams: []Stream{{Name: "a b"}}, Default: "a b"},
		"bad ip":                {Streams: []Stream{{Name: "a", SourceIP: "300.1.1.1"}}, Default: "a"},
		"bad hello":             {Streams: []Stream{{Name: "a", Hello: "a b"}}, Default: "a"},
		"negative max_inflight": {Streams: []Stream{{Name: "a", MaxInflight: -1}}, Default: "a"},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestMaxInflight(t *testing.T) {
	p, err := New(Config{Streams: []Stream{{Name: "transactional", Priority: 10}, {Name: "bulk", MaxInflight: 15}}, Default: "bulk"})
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]int{"bulk": 15, "BULK": 15, "": 15, "transactional": 0, "legacy": 15} {
		if got := p.MaxInflight(name); got != want {
			t.Errorf("MaxInflight(%q) = %d, want %d", name, got, want)
		}
	}
}
