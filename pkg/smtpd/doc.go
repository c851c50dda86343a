// Package smtpd is relayctl's message submission server: the front door of
// the relay, built on go-smtp.
//
// It implements the submission rules of RFC 6409 on top of SMTP (RFC
// 5321): clients authenticate with SMTP AUTH (RFC 4954; PLAIN per RFC 4616
// and the de-facto LOGIN mechanism) against bcrypt password hashes, or
// relay without AUTH from configured trusted networks. Everyone else gets
// "530 5.7.0 Authentication required" at MAIL, so the server is never an
// open relay. AUTH is only offered on TLS (implicit, or after STARTTLS per
// RFC 3207) or to loopback clients, unless InsecureAuth is set.
//
// Accepted messages are checked for bare CR and bare LF (RFC 5321 §2.3.8,
// the SMTP smuggling defence), get Message-ID and Date when missing (RFC
// 6409 §8.2, §8.3), a Received trace field (RFC 5321 §4.4) and a DKIM
// signature (RFC 6376) when a key matches the From domain, and are
// answered 250 only after the queue has them on disk (RFC 5321 §4.2.5 and
// §6.1: once 250 is sent the server is responsible for the message).
// A disk that refuses the write gets "452 4.3.1" (RFC 3463).
//
// The DSN extension (RFC 3461) is advertised; RET, ENVID, NOTIFY and ORCPT
// are stored in the queue envelope for the delivery engine.
package smtpd
