// Package dnsbl checks IP addresses and domain names against DNS
// blocklists (DNSxLs) as specified in RFC 5782.
//
// An IPv4 address is looked up as its reversed octets under the list's
// zone (RFC 5782 §2.1), an IPv6 address as its 32 reversed nibbles
// (§2.4), a domain name as itself under the zone (§3). An A record in
// 127.0.0.0/8 means "listed" (§2.3), its TXT record gives the reason
// (§2.2), NXDOMAIN means "not listed".
//
// Lists do not all follow the RFC, and a resolver can lie, so every answer
// is interpreted per list: Spamhaus ZEN answers name the sub-list (SBL,
// CSS, XBL, PBL…) and what it means for a sender; Spamhaus's
// 127.255.255.0/24 answers and URIBL's 127.0.0.1 are refusals ("use your
// own resolver or a DQS key"), never listings; an answer outside
// 127.0.0.0/8 comes from a broken or NXDOMAIN-hijacking resolver and is an
// error. The RFC 5782 §5 test points (127.0.0.2 listed, 127.0.0.1 not,
// TEST/INVALID for domain lists) detect lists that are dead, refuse, or
// list the whole Internet.
//
// Every query of a run shares one bound on the queries in flight
// (Checker.Concurrency), so checking one IP against many lists takes one
// round trip, and ten thousand IPs are checked at the rate the bound and
// the resolver allow. A failed or timed-out query affects only its own
// result.
package dnsbl
