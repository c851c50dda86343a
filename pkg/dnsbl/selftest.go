package dnsbl

import (
	"context"
	"errors"
	"net/netip"
	"sync"
)

// Self-test statuses of a list.
const (
	SelfTestOK              = "ok"               // 127.0.0.2 listed, 127.0.0.1 not
	SelfTestDead            = "dead"             // the listed test point is not listed
	SelfTestListsEverything = "lists-everything" // the unlisted test point is listed
	SelfTestRefused         = "refused"          // the list answered an error code
	SelfTestBadAnswer       = "bad-answer"       // answers outside 127/8 or undefined codes
	SelfTestUnreachable     = "unreachable"      // timeout, SERVFAIL, network
)

// Probe is one self-test query.
type Probe struct {
	Point      string   `json:"point"` // "127.0.0.2", "::ffff:7f00:1", "test"…
	Query      string   `json:"query"`
	WantListed bool     `json:"want_listed"`
	Listed     bool     `json:"listed"`
	Codes      []string `json:"codes"`
	Error      string   `json:"error,omitempty"`
	err        error
}

// SelfTest is the self-test outcome of one list.
type SelfTest struct {
	Zone    string  `json:"zone"`
	List    string  `json:"list"`
	Status  string  `json:"status"`
	Message string  `json:"message"`
	Probes  []Probe `json:"probes"`
}

// OK reports whether the list passed.
func (s SelfTest) OK() bool { return s.Status == SelfTestOK }

// probes returns the RFC 5782 §5 test points of z: 127.0.0.2 must be
// listed and 127.0.0.1 must not (IPv6 lists: ::FFFF:7F00:2 and
// ::FFFF:7F00:1); domain lists: TEST listed, INVALID not (or the list's
// own test names).
func probes(z Zone) []Probe {
	if z.Kind == DomainList {
		return []Probe{
			{Point: z.TestListed, Query: DomainQueryName(z.Name, z.TestListed), WantListed: true},
			{Point: z.TestUnlisted, Query: DomainQueryName(z.Name, z.TestUnlisted)},
		}
	}
	ps := []Probe{
		{Point: "127.0.0.2", Query: QueryName(z.Name, netip.MustParseAddr("127.0.0.2")), WantListed: true},
		{Point: "127.0.0.1", Query: QueryName(z.Name, netip.MustParseAddr("127.0.0.1"))},
	}
	if z.IPv6 {
		// Built from the 16 bytes so that QueryName does not unmap them.
		v6 := func(last byte) netip.Addr {
			return netip.AddrFrom16([16]byte{10: 0xff, 11: 0xff, 12: 0x7f, 15: last})
		}
		ps = append(ps,
			Probe{Point: "::ffff:7f00:2", Query: nibbles(z.Name, v6(2)), WantListed: true},
			Probe{Point: "::ffff:7f00:1", Query: nibbles(z.Name, v6(1))})
	}
	return ps
}

// nibbles is the IPv6 query name of a under zone (RFC 5782 §2.4: 32
// nibbles reversed), without unmapping a (the self-test needs the
// IPv4-mapped test points as they are).
func nibbles(zone string, a netip.Addr) string {
	const hex = "0123456789abcdef"
	o := a.As16()
	b := make([]byte, 0, 64+len(zone))
	for i := 15; i >= 0; i-- {
		b = append(b, hex[o[i]&0xf], '.', hex[o[i]>>4], '.')
	}
	return string(b) + zone
}

// SelfTest queries every zone's test points at once (under the
// concurrency bound) and says which lists work, are dead, list
// everything, refuse this resolver, or cannot be reached.
func (c *Checker) SelfTest(ctx context.Context) []SelfTest {
	r := c.resolver()
	out := make([]SelfTest, len(c.Zones))
	var wg sync.WaitGroup
	for i, z := range c.Zones {
		out[i] = SelfTest{Zone: z.Name, List: z.Title, Probes: probes(z)}
		for j := range out[i].Probes {
			p := &out[i].Probes[j]
			wg.Add(1)
			go func() {
				defer wg.Done()
				q := lookup(ctx, r, z, job{target: p.Point, name: p.Query})
				p.Listed, p.Codes, p.Error, p.err = q.Listed, q.Codes, q.Error, q.Err
			}()
		}
	}
	wg.Wait()
	for i := range out {
		out[i].Status, out[i].Message = judge(out[i].Probes)
	}
	return out
}

func judge(ps []Probe) (status, msg string) {
	for _, p := range ps {
		if errors.Is(p.err, ErrRefused) {
			return SelfTestRefused, "the list refused to answer its test point " + p.Point + ": " + p.Error
		}
	}
	for _, p := range ps {
		if p.err != nil && (errors.Is(p.err, ErrBadAnswer) || errors.Is(p.err, ErrUnexpected)) {
			return SelfTestBadAnswer, "test point " + p.Point + ": " + p.Error
		}
	}
	for _, p := range ps {
		if p.err != nil {
			return SelfTestUnreachable, "test point " + p.Point + ": " + p.Error
		}
	}
	for _, p := range ps {
		if !p.WantListed && p.Listed {
			return SelfTestListsEverything, "test point " + p.Point + " must not be listed but is (RFC 5782 §5): the list answers \"listed\" for everything; do not use it"
		}
	}
	for _, p := range ps {
		if p.WantListed && !p.Listed {
			return SelfTestDead, "test point " + p.Point + " must be listed but is not (RFC 5782 §5): the list is dead, renamed, or not answering this resolver"
		}
	}
	return SelfTestOK, "test points answer as RFC 5782 §5 requires"
}
