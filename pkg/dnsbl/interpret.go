package dnsbl

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Sentinel errors for answers that are not listings; an *AnswerError
// wraps one of them.
var (
	// ErrRefused: the list answered with an error code instead of data
	// (Spamhaus 127.255.255.x, URIBL 127.0.0.1, DBL 127.0.1.255).
	ErrRefused = errors.New("dnsbl: the list refused to answer")
	// ErrBadAnswer: an answer outside 127.0.0.0/8 (RFC 5782 §2.3), which
	// no list sends: the resolver is broken or rewrites NXDOMAIN.
	ErrBadAnswer = errors.New("dnsbl: answer outside 127.0.0.0/8")
	// ErrUnexpected: a 127/8 answer the list does not define (or
	// 127.0.0.1, which RFC 5782 §5 reserves as never listed).
	ErrUnexpected = errors.New("dnsbl: unexpected answer")
)

// AnswerError explains why an answer is an error and not a listing.
type AnswerError struct {
	Zone string
	Code string // the answer, e.g. "127.255.255.254"
	Msg  string // what it means and what to do
	Err  error  // ErrRefused, ErrBadAnswer or ErrUnexpected
}

func (e *AnswerError) Error() string { return fmt.Sprintf("%s answered %s: %s", e.Zone, e.Code, e.Msg) }
func (e *AnswerError) Unwrap() error { return e.Err }

// Verdict is the interpretation of one list's A records for one query.
type Verdict struct {
	Listed  bool
	Codes   []string // every answer, as given
	Lists   []string // sub-lists or categories, e.g. "SBL", "PBL"
	Meaning string   // what the listing means for a sender
	// Err is set (and Listed false) when the answer is an error: an
	// *AnswerError. A Verdict with Err is never a listing.
	Err error
}

type code struct {
	list    string
	meaning string
	listed  bool
	err     error // ErrRefused/ErrUnexpected: not a listing
}

// Interpret reads the A records a list returned (NOERROR answers; pass
// nil for NXDOMAIN/NODATA). Any error answer makes the whole verdict an
// error, since a list that refuses cannot vouch for the other records.
func (z Zone) Interpret(answers []netip.Addr) Verdict {
	var v Verdict
	for _, a := range answers {
		a = a.Unmap()
		v.Codes = append(v.Codes, a.String())
	}
	var meanings []string
	for _, a := range answers {
		a = a.Unmap()
		var c code
		if !a.Is4() || a.As4()[0] != 127 { // RFC 5782 §2.3
			c = code{err: ErrBadAnswer, meaning: "no blocklist answers outside 127.0.0.0/8: the resolver is broken or rewrites NXDOMAIN answers; use a resolver that does not"}
		} else {
			c = z.code(a.As4())
		}
		if c.err != nil {
			if v.Err == nil {
				v.Err = &AnswerError{Zone: z.Name, Code: a.String(), Msg: c.meaning, Err: c.err}
			}
			continue
		}
		if c.list != "" && !slices.Contains(v.Lists, c.list) {
			v.Lists = append(v.Lists, c.list)
		}
		if c.listed {
			v.Listed = true
		}
		if c.meaning != "" && !slices.Contains(meanings, c.meaning) {
			meanings = append(meanings, c.meaning)
		}
	}
	if v.Err != nil {
		v.Listed, v.Lists, meanings = false, nil, nil
	}
	v.Meaning = strings.Join(meanings, "; ")
	return v
}

func (z Zone) code(b [4]byte) code {
	if b[1] == 255 && b[2] == 255 { // 127.255.255.0/24: never reputation data
		return spamhausError(b[3], z.Spamhaus())
	}
	switch z.scheme {
	case schemeSpamhausIP:
		return spamhausIP(b)
	case schemeSpamhausDBL:
		return spamhausDBL(b)
	case schemeSpamhausZRD:
		return spamhausZRD(b)
	case schemeURIBL:
		return uribl(b)
	case schemeHostKarma:
		return hostKarma(b)
	}
	if b == [4]byte{127, 0, 0, 1} { // RFC 5782 §5: 127.0.0.1 MUST NOT be listed
		return code{err: ErrUnexpected, meaning: "127.0.0.1 is never a listing (RFC 5782 §5); the list is misconfigured or refusing this resolver"}
	}
	if b == [4]byte{127, 0, 0, 2} && z.listed != "" {
		return code{listed: true, meaning: z.listed}
	}
	return code{listed: true, meaning: fmt.Sprintf("listed (return code 127.%d.%d.%d)", b[1], b[2], b[3])}
}

// spamhausError reads 127.255.255.x (Spamhaus return-code page and
// news article 788). Other lists have no reputation data there either;
// their refusals are reported without Spamhaus's remedies.
func spamhausError(last byte, spamhaus bool) code {
	if !spamhaus {
		return code{err: ErrRefused, meaning: "error code from the list (127.255.255.0/24 is never reputation data): it refuses this resolver or the query; use your own resolver"}
	}
	switch last {
	case 252:
		return code{err: ErrRefused, meaning: "typing error in the list name: this zone does not exist at Spamhaus"}
	case 254:
		return code{err: ErrRefused, meaning: "query refused: it came through a public/open resolver (or one without attributable reverse DNS); use your own resolver or a Spamhaus DQS key (--dqs-key)"}
	case 255:
		return code{err: ErrRefused, meaning: "query refused: excessive number of queries from this resolver; use your own resolver or a Spamhaus DQS key (--dqs-key)"}
	case 250, 251:
		return code{err: ErrRefused, meaning: "the Spamhaus DQS key is invalid, disabled or not allowed for this zone"}
	}
	return code{err: ErrRefused, meaning: "error code from the list (127.255.255.0/24 is never reputation data)"}
}

// spamhausIP reads ZEN/SBL/XBL/PBL answers (docs.spamhaus.com, datasets
// "zones"): 127.0.0.2–11, 20, 30.
func spamhausIP(b [4]byte) code {
	if b[1] != 0 || b[2] != 0 {
		return code{err: ErrUnexpected, meaning: "not a Spamhaus IP-list return code; not treated as a listing"}
	}
	switch b[3] {
	case 2:
		return code{listed: true, list: "SBL", meaning: "SBL: Spamhaus verified this IP as a spam source or spam operation, most receivers reject its mail"}
	case 3:
		return code{listed: true, list: "CSS", meaning: "CSS: automated listing for low-reputation mail (snowshoe spam, bad list practices), fix what this IP sends, then request removal"}
	case 4, 5, 6, 7:
		return code{listed: true, list: "XBL", meaning: "XBL: the host is infected or exploited (malware, open proxy, stolen credentials), clean and secure it, then request removal"}
	case 8:
		return code{listed: true, list: "SBL", meaning: "SBL (return code reserved by Spamhaus)"}
	case 9:
		return code{listed: true, list: "DROP", meaning: "DROP: the netblock is hijacked or run by criminals (always also on the SBL)"}
	case 10:
		return code{listed: true, list: "PBL", meaning: "PBL (ISP-maintained): not a spam listing, this IP should not send mail directly to MX hosts: relay through your provider, or have the ISP change the entry if it is a mail server"}
	case 11:
		return code{listed: true, list: "PBL", meaning: "PBL (Spamhaus-maintained): not a spam listing, this IP should not send mail directly to MX hosts: relay through your provider, or remove it at check.spamhaus.org if it is a mail server with proper reverse DNS"}
	case 20:
		return code{listed: true, list: "AuthBL", meaning: "AuthBL: seen abusing SMTP authentication with stolen credentials (bots)"}
	case 30:
		return code{listed: true, list: "BCL", meaning: "BCL: hosts a botnet command-and-control server"}
	}
	return code{err: ErrUnexpected, meaning: "not a Spamhaus IP-list return code; not treated as a listing"}
}

// spamhausDBL reads DBL answers: 127.0.1.2–99 listed, 102–106 abused
// legitimate domains, 255 "IP queries not allowed".
func spamhausDBL(b [4]byte) code {
	if b[1] != 0 || b[2] != 1 {
		return code{err: ErrUnexpected, meaning: "not a Spamhaus DBL return code; not treated as a listing"}
	}
	switch n := b[3]; {
	case n == 2:
		return code{listed: true, list: "spam", meaning: "DBL: low-reputation domain (spam)"}
	case n == 4:
		return code{listed: true, list: "phish", meaning: "DBL: phishing domain"}
	case n == 5:
		return code{listed: true, list: "malware", meaning: "DBL: malware domain"}
	case n == 6:
		return code{listed: true, list: "botnet-cc", meaning: "DBL: botnet command-and-control domain"}
	case n >= 3 && n <= 99:
		return code{listed: true, list: "spam", meaning: fmt.Sprintf("DBL: low-reputation domain (code 127.0.1.%d)", n)}
	case n == 102:
		return code{listed: true, list: "abused-legit", meaning: "DBL: legitimate domain abused by spammers (compromised site or account)"}
	case n == 103:
		return code{listed: true, list: "abused-redirector", meaning: "DBL: abused legitimate URL shortener or redirector"}
	case n == 104:
		return code{listed: true, list: "abused-legit-phish", meaning: "DBL: legitimate domain abused for phishing"}
	case n == 105:
		return code{listed: true, list: "abused-legit-malware", meaning: "DBL: legitimate domain abused to spread malware"}
	case n == 106:
		return code{listed: true, list: "abused-legit-botnet-cc", meaning: "DBL: legitimate domain abused to host botnet command-and-control"}
	case n == 255:
		return code{err: ErrRefused, meaning: "IP queries are not allowed on the DBL (an IP was asked of a domain list)"}
	}
	return code{err: ErrUnexpected, meaning: "not a Spamhaus DBL return code; not treated as a listing"}
}

// spamhausZRD reads Zero Reputation Domain answers: 127.0.2.2–24, the
// code encoding how many hours ago the domain was first seen (Spamhaus
// zones page and spamassassin-dqs README).
func spamhausZRD(b [4]byte) code {
	if b[1] == 0 && b[2] == 2 && b[3] >= 2 && b[3] <= 24 {
		return code{listed: true, list: "ZRD", meaning: fmt.Sprintf("ZRD: newly observed domain, first seen by Spamhaus within the last 24 hours (return code 127.0.2.%d encodes its age)", b[3])}
	}
	return code{err: ErrUnexpected, meaning: "not a Spamhaus ZRD return code; not treated as a listing"}
}

// uribl reads multi.uribl.com's bitmask (uribl.com/usage and
// refused.shtml): 2 black, 4 grey, 8 red; 1 alone means "refused".
func uribl(b [4]byte) code {
	if b[1] != 0 || b[2] != 0 {
		return code{err: ErrUnexpected, meaning: "not a URIBL return code; not treated as a listing"}
	}
	n := b[3]
	if n&1 != 0 {
		return code{err: ErrRefused, meaning: "query refused: URIBL blocks public and high-volume resolvers; use your own resolver"}
	}
	var parts, lists []string
	if n&2 != 0 {
		lists, parts = append(lists, "black"), append(parts, "black: domain used in spam")
	}
	if n&4 != 0 {
		lists, parts = append(lists, "grey"), append(parts, "grey: domain seen in bulk mail that may be solicited")
	}
	if n&8 != 0 {
		lists, parts = append(lists, "red"), append(parts, "red: new or monitored domain seen in mail flow")
	}
	if len(lists) == 0 {
		return code{err: ErrUnexpected, meaning: "not a URIBL return code; not treated as a listing"}
	}
	return code{listed: true, list: strings.Join(lists, "+"), meaning: "URIBL " + strings.Join(parts, ", ")}
}

// hostKarma reads HostKarma answers, where 127.0.0.1 is a good answer.
func hostKarma(b [4]byte) code {
	if b[1] != 0 || b[2] != 0 {
		return code{err: ErrUnexpected, meaning: "not a HostKarma return code; not treated as a listing"}
	}
	switch b[3] {
	case 1:
		return code{list: "white", meaning: "HostKarma white: sends good mail"}
	case 2:
		return code{listed: true, list: "black", meaning: "HostKarma black: sends spam"}
	case 3:
		return code{list: "yellow", meaning: "HostKarma yellow: sends a mix of good mail and spam (large provider)"}
	case 4:
		return code{listed: true, list: "brown", meaning: "HostKarma brown: sends mostly spam, not yet blacklisted"}
	case 5:
		return code{list: "nobl", meaning: "HostKarma NOBL: not to be blacklisted"}
	}
	return code{err: ErrUnexpected, meaning: "not a HostKarma return code; not treated as a listing"}
}
