// Package spf implements the Sender Policy Framework, RFC 7208.
//
// Parse reads a record to the full grammar of RFC 7208 §12, macros
// (§7) included, and reports syntax errors with the offending term and
// its offset. Checker.CheckHost is check_host() (§4): it evaluates a
// domain's policy for a client IP, counting DNS-querying terms (at most
// 10), void lookups (at most 2) and MX/PTR names (at most 10 each) as
// §4.6.4 requires. Audit walks a domain's whole include/redirect tree,
// fetching independent subtrees concurrently, and reports what each
// node costs of the lookup budget along with record problems as
// findings with stable "spf.*" codes.
//
// Every DNS query goes through a dnsclient.Resolver; tests use a
// pkg/dnstest server on loopback.
package spf
