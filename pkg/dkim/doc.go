// Package dkim signs and verifies DomainKeys Identified Mail signatures
// (RFC 6376) with RSA-SHA256 and Ed25519-SHA256 (RFC 8463), generates keys
// and the DNS key records that publish them, and audits published key
// records the way verifiers read them.
//
// Signing and the cryptographic part of verification use
// github.com/emersion/go-msgauth/dkim; this package adds what an operator
// needs around it: a default header list with From oversigned
// (RFC 6376 §5.4.2, §8.15), LF→CRLF normalisation (RFC 5322 §2.1), key
// loading, a strict tag-list parser (RFC 6376 §3.2) for key records and
// signature fields, key-record checks with stable finding codes, and
// per-signature results named as in RFC 8601 §2.7.1.
//
// Key sizes follow RFC 8301 §3.2: verifiers must not accept RSA keys under
// 1024 bits, and signers should use at least 2048.
package dkim
