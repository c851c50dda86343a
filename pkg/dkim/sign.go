package dkim

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	msgdkim "github.com/emersion/go-msgauth/dkim"
)

// DefaultHeaders are the header fields signed when SignOptions.Headers is
// nil, following RFC 6376 §5.4.1's recommendation. Each is signed once per
// occurrence in the message; From is also listed once more than it occurs
// (oversigned, RFC 6376 §8.15) so that a second From added in transit
// breaks the signature.
var DefaultHeaders = []string{
	"From", "Reply-To", "Sender", "Subject", "Date", "To", "Cc",
	"Message-ID", "In-Reply-To", "References",
	"MIME-Version", "Content-Type", "Content-Transfer-Encoding",
	"List-Id", "List-Unsubscribe", "List-Unsubscribe-Post",
}

// Canonicalization names (RFC 6376 §3.4).
const (
	Simple  = "simple"
	Relaxed = "relaxed"
)

// SignOptions configure a signature.
type SignOptions struct {
	Domain, Selector string
	// Identifier is the optional i= (AUID, RFC 6376 §3.5): an address or
	// "@domain" in Domain or a subdomain of it.
	Identifier string
	// Signer is an *rsa.PrivateKey or an ed25519.PrivateKey.
	Signer crypto.Signer
	// HeaderCanon and BodyCanon are "relaxed" (the default when empty)
	// or "simple".
	HeaderCanon, BodyCanon string
	// Headers lists the header fields to sign (h=), in order; nil means
	// DefaultHeaders as present in the message, with From oversigned.
	// An explicit list is used as given and must name From.
	Headers []string
	// Expiration sets x= that long after the signing time; 0 means no x=.
	Expiration time.Duration
	// Now is the signing clock for x= (nil: time.Now). The t= tag is
	// always the real time (go-msgauth sets it).
	Now func() time.Time
}

// Sentinel errors.
var (
	ErrNoFrom      = errors.New("dkim: message has no From header field")
	ErrNoSeparator = errors.New("dkim: message header does not end in CRLF and has no blank line before a body")
	ErrKeyTooShort = errors.New("dkim: RSA key shorter than 1024 bits (RFC 8301 §3.2)")
)

// LoadPrivateKey reads a PEM private key: PKCS#8 ("PRIVATE KEY", RSA or
// Ed25519) or PKCS#1 ("RSA PRIVATE KEY").
func LoadPrivateKey(path string) (crypto.Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("dkim: reading key: %w", err)
	}
	k, err := ParsePrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// ParsePrivateKey parses a PEM private key as LoadPrivateKey does.
func ParsePrivateKey(data []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("dkim: no PEM block in key file")
	}
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("dkim: unsupported PEM block %q (want PRIVATE KEY or RSA PRIVATE KEY)", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("dkim: parsing %s: %w", block.Type, err)
	}
	switch k := key.(type) {
	case *rsa.PrivateKey:
		return k, nil
	case ed25519.PrivateKey:
		return k, nil
	}
	return nil, fmt.Errorf("dkim: unsupported key type %T (want RSA or Ed25519)", key)
}

// ToCRLF turns every bare LF into CRLF (RFC 5322 §2.1: lines end in
// CRLF) and reports whether anything changed. CRLF input is returned
// unchanged.
func ToCRLF(msg []byte) (out []byte, changed bool) {
	n := 0
	for i, c := range msg {
		if c == '\n' && (i == 0 || msg[i-1] != '\r') {
			n++
		}
	}
	if n == 0 {
		return msg, false
	}
	out = make([]byte, 0, len(msg)+n)
	for i, c := range msg {
		if c == '\n' && (i == 0 || msg[i-1] != '\r') {
			out = append(out, '\r')
		}
		out = append(out, c)
	}
	return out, true
}

// headerEnd returns the offset just past the header's terminating blank
// line in a CRLF message, or -1.
func headerEnd(msg []byte) int {
	if bytes.HasPrefix(msg, []byte("\r\n")) {
		return 2
	}
	i := bytes.Index(msg, []byte("\r\n\r\n"))
	if i < 0 {
		return -1
	}
	return i + 4
}

// HeaderFields splits the header of a CRLF message into fields, each with
// its continuation lines and final CRLF, in order.
func HeaderFields(msg []byte) []string {
	end := headerEnd(msg)
	if end < 0 {
		end = len(msg)
	}
	var fields []string
	for _, line := range strings.SplitAfter(string(msg[:end]), "\r\n") {
		if line == "" || line == "\r\n" {
			continue
		}
		if (line[0] == ' ' || line[0] == '\t') && len(fields) > 0 {
			fields[len(fields)-1] += line
			continue
		}
		fields = append(fields, line)
	}
	return fields
}

// FieldName returns the name of a header field ("From" for "From: a@b").
func FieldName(field string) string {
	name, _, _ := strings.Cut(field, ":")
	return strings.TrimSpace(name)
}

// headersToSign picks DefaultHeaders present in the message: each name as
// many times as it occurs, From once more (oversigning).
func headersToSign(fields []string) []string {
	count := map[string]int{}
	for _, f := range fields {
		count[strings.ToLower(FieldName(f))]++
	}
	var out []string
	for _, h := range DefaultHeaders {
		n := count[strings.ToLower(h)]
		if strings.EqualFold(h, "From") {
			n++ // RFC 6376 §8.15: oversign From
		}
		for range n {
			out = append(out, h)
		}
	}
	return out
}

func canon(s string) (msgdkim.Canonicalization, error) {
	switch strings.ToLower(s) {
	case "", Relaxed:
		return msgdkim.CanonicalizationRelaxed, nil
	case Simple:
		return msgdkim.CanonicalizationSimple, nil
	}
	return "", fmt.Errorf("dkim: unknown canonicalization %q (want relaxed or simple)", s)
}

// ParseCanon parses a c= style "header/body" pair ("relaxed/simple"); a
// single word applies to both.
func ParseCanon(s string) (header, body string, err error) {
	h, b, ok := strings.Cut(strings.ToLower(strings.TrimSpace(s)), "/")
	if !ok {
		b = h
	}
	if _, err := canon(h); err != nil {
		return "", "", err
	}
	if _, err := canon(b); err != nil {
		return "", "", err
	}
	if h == "" {
		h = Relaxed
	}
	if b == "" {
		b = Relaxed
	}
	return h, b, nil
}

// Validate checks the options without a message: domain, selector, key
// (RSA of at least 1024 bits or Ed25519), canonicalizations, the header
// list (must name From) and the identifier. The relay calls it when it
// loads its configuration, so a bad entry fails at start, not per message.
func (o SignOptions) Validate() error {
	if o.Domain == "" || o.Selector == "" {
		return errors.New("dkim: domain and selector are required")
	}
	if err := ValidSelector(o.Selector); err != nil {
		return fmt.Errorf("dkim: %w", err)
	}
	switch k := o.Signer.(type) {
	case nil:
		return errors.New("dkim: no signing key")
	case *rsa.PrivateKey:
		if k.N.BitLen() < MinRSABits {
			return ErrKeyTooShort
		}
	case ed25519.PrivateKey:
	default:
		return fmt.Errorf("dkim: unsupported key type %T (want RSA or Ed25519)", o.Signer)
	}
	if _, err := canon(o.HeaderCanon); err != nil {
		return err
	}
	if _, err := canon(o.BodyCanon); err != nil {
		return err
	}
	if o.Headers != nil {
		hasFrom := false
		for _, k := range o.Headers {
			if strings.EqualFold(strings.TrimSpace(k), "From") {
				hasFrom = true
			}
			if strings.TrimSpace(k) == "" || strings.ContainsAny(k, ":; \t\r\n") {
				return fmt.Errorf("dkim: invalid header field name %q", k)
			}
		}
		if !hasFrom {
			return errors.New("dkim: the signed header list must include From (RFC 6376 §5.4)")
		}
	}
	if o.Identifier != "" {
		_, d, ok := strings.Cut(o.Identifier, "@")
		d, dom := strings.ToLower(d), strings.ToLower(o.Domain)
		if !ok || (d != dom && !strings.HasSuffix(d, "."+dom)) {
			return fmt.Errorf("dkim: identifier %q is not in %s or a subdomain (RFC 6376 §3.5)", o.Identifier, o.Domain)
		}
	}
	if o.Expiration < 0 {
		return errors.New("dkim: negative expiration")
	}
	return nil
}

func (o SignOptions) msgauth(fields []string) (*msgdkim.SignOptions, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	hc, _ := canon(o.HeaderCanon)
	bc, _ := canon(o.BodyCanon)
	hasFrom := false
	for _, f := range fields {
		if strings.EqualFold(FieldName(f), "From") {
			hasFrom = true
		}
	}
	if !hasFrom {
		return nil, ErrNoFrom // RFC 6376 §5.4: From MUST be signed
	}
	keys := o.Headers
	if keys == nil {
		keys = headersToSign(fields)
	}
	mo := &msgdkim.SignOptions{
		Domain: o.Domain, Selector: o.Selector, Signer: o.Signer, Identifier: o.Identifier,
		HeaderCanonicalization: hc, BodyCanonicalization: bc,
		HeaderKeys: keys,
	}
	if o.Expiration > 0 {
		now := time.Now
		if o.Now != nil {
			now = o.Now
		}
		mo.Expiration = now().Add(o.Expiration)
	}
	return mo, nil
}

// SignatureHeader signs msg, which must use CRLF line endings (a message
// with no body may lack the blank line), and returns the complete "DKIM-Signature: …\r\n"
// field to prepend to it.
func SignatureHeader(msg []byte, o SignOptions) (string, error) {
	if headerEnd(msg) < 0 {
		// A header-only message whose last field ends in CRLF has an empty
		// body (RFC 5322 §3.5): sign it as such; verifiers hash the same.
		if !bytes.HasSuffix(msg, []byte("\r\n")) {
			return "", ErrNoSeparator
		}
		msg = append(msg[:len(msg):len(msg)], "\r\n"...)
	}
	mo, err := o.msgauth(HeaderFields(msg))
	if err != nil {
		return "", err
	}
	s, err := msgdkim.NewSigner(mo)
	if err != nil {
		return "", err
	}
	if _, err := s.Write(msg); err != nil {
		s.Close()
		return "", fmt.Errorf("dkim: signing: %w", err)
	}
	if err := s.Close(); err != nil {
		return "", fmt.Errorf("dkim: signing: %w", err)
	}
	return s.Signature(), nil
}

// Normalize prepares a message for signing: bare LFs become CRLF, and a
// message without a blank line after its header gets one (an empty body).
// changed reports whether line endings were converted.
func Normalize(msg []byte) (out []byte, changed bool) {
	out, changed = ToCRLF(msg)
	if headerEnd(out) < 0 {
		out = out[:len(out):len(out)] // never append into the caller's array
		if !bytes.HasSuffix(out, []byte("\r\n")) {
			out = append(out, "\r\n"...)
		}
		out = append(out, "\r\n"...)
	}
	return out, changed
}

// Sign reads a message from r, normalises it (see Normalize) and writes
// the DKIM-Signature field followed by the message to w.
func Sign(w io.Writer, r io.Reader, o SignOptions) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("dkim: reading message: %w", err)
	}
	msg, _ := Normalize(raw)
	sig, err := SignatureHeader(msg, o)
	if err != nil {
		return err
	}
	if _, err := io.WriteString(w, sig); err != nil {
		return err
	}
	_, err = w.Write(msg)
	return err
}
