package dkim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	msgdkim "github.com/emersion/go-msgauth/dkim"

	"github.com/relayctl/relayctl/pkg/dnsclient"
)

// Results of one signature's verification (RFC 8601 §2.7.1).
const (
	ResultPass      = "pass"
	ResultFail      = "fail"
	ResultNeutral   = "neutral"
	ResultTempError = "temperror"
	ResultPermError = "permerror"
)

// Finding codes for signature verification (documented in docs/dkim.md).
const (
	CodeNoSignature        = "dkim.no-signature"        // the message carries no DKIM-Signature
	CodeBodyHashMismatch   = "dkim.body-hash-mismatch"  // bh= does not match the body (§3.7)
	CodeSignatureMismatch  = "dkim.signature-mismatch"  // b= does not verify against the key
	CodeKeyNotFound        = "dkim.key-not-found"       // no key record at s=._domainkey.d=
	CodeKeyUnavailable     = "dkim.key-unavailable"     // DNS failed while fetching the key
	CodeSignatureExpired   = "dkim.signature-expired"   // x= is in the past (§3.5)
	CodeBodyLength         = "dkim.body-length"         // l= used: part of the body is unsigned
	CodeWeakHash           = "dkim.weak-hash"           // rsa-sha1 (RFC 8301 §3.1)
	CodeFromNotSigned      = "dkim.from-not-signed"     // h= lacks From (§5.4)
	CodeIdentityMismatch   = "dkim.identity-mismatch"   // i= not in d= (§3.5)
	CodeMalformedSignature = "dkim.malformed-signature" // tags missing, bad syntax, unknown v=/a=/c=
	CodeTooManySignatures  = "dkim.too-many-signatures" // more than MaxSignatures fields
	CodeVerifyError        = "dkim.verify-error"        // any other verification failure
)

// MaxSignatures is how many DKIM-Signature fields Verify checks; more are
// reported unchecked (a message with dozens is an attack, RFC 6376 §8.4).
const MaxSignatures = 16

// Verification is the result of checking one DKIM-Signature field.
type Verification struct {
	Domain           string    `json:"domain"`
	Selector         string    `json:"selector"`
	Algorithm        string    `json:"algorithm"`
	Canonicalization string    `json:"canonicalization"`
	Identifier       string    `json:"identifier,omitempty"`
	Result           string    `json:"result"`
	Reason           string    `json:"reason,omitempty"`
	Code             string    `json:"code,omitempty"`
	HeaderKeys       []string  `json:"header_keys"`
	BodyLength       int64     `json:"body_length"` // -1 when no l=
	Signed           time.Time `json:"signed,omitzero"`
	Expires          time.Time `json:"expires,omitzero"`
	// KeyBits is the key's size (RSA modulus bits, 256 for Ed25519) and
	// Testing is set when its record has t=y; both are zero when the key
	// record was not fetched or did not parse.
	KeyBits int  `json:"key_bits,omitempty"`
	Testing bool `json:"testing,omitempty"`
}

// Verify checks every DKIM-Signature field of a message (RFC 6376 §6),
// fetching keys through r, and returns one Verification per field in
// header order. The message may use LF or CRLF line endings. The error
// is only for a message that cannot be read or has no header.
func Verify(ctx context.Context, r dnsclient.Resolver, msg io.Reader) ([]Verification, error) {
	raw, err := io.ReadAll(msg)
	if err != nil {
		return nil, fmt.Errorf("dkim: reading message: %w", err)
	}
	data, _ := Normalize(raw)
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, errors.New("dkim: empty message")
	}
	var out []Verification
	for _, f := range HeaderFields(data) {
		if !strings.EqualFold(FieldName(f), "DKIM-Signature") {
			continue
		}
		_, value, _ := strings.Cut(f, ":")
		out = append(out, describe(value))
	}
	if len(out) == 0 {
		return out, nil
	}
	keys := &keyCache{lookup: dnsclient.TXTFunc(ctx, r), records: map[string][]string{}}
	opts := &msgdkim.VerifyOptions{LookupTXT: keys.LookupTXT, MaxVerifications: MaxSignatures}
	vs, err := msgdkim.VerifyWithOptions(bytes.NewReader(data), opts)
	if err != nil && !errors.Is(err, msgdkim.ErrTooManySignatures) {
		return nil, fmt.Errorf("dkim: %w", err)
	}
	for i := range out {
		if i >= len(vs) {
			out[i].Result, out[i].Code = ResultNeutral, CodeTooManySignatures
			out[i].Reason = fmt.Sprintf("not checked: only the first %d signatures are verified", MaxSignatures)
			continue
		}
		if out[i].Result != "" { // our own parse already refused it
			continue
		}
		if vs[i].Identifier != "" {
			out[i].Identifier = vs[i].Identifier
		}
		out[i].Result, out[i].Code, out[i].Reason = classify(vs[i].Err, out[i])
		keys.annotate(&out[i])
	}
	return out, nil
}

// keyCache remembers the key records go-msgauth fetched, so results can
// say what key was used without asking DNS again. go-msgauth verifies
// signatures in parallel: it is guarded by a mutex.
type keyCache struct {
	lookup  func(string) ([]string, error)
	mu      sync.Mutex
	records map[string][]string
}

func (c *keyCache) LookupTXT(name string) ([]string, error) {
	txts, err := c.lookup(name)
	if err == nil {
		c.mu.Lock()
		c.records[strings.ToLower(strings.TrimSuffix(name, "."))] = txts
		c.mu.Unlock()
	}
	return txts, err
}

// annotate adds the key's size and flags, and applies what go-msgauth
// does not: t=s (RFC 6376 §3.6.1: i= must be in exactly d=).
func (c *keyCache) annotate(v *Verification) {
	c.mu.Lock()
	txts := c.records[strings.ToLower(RecordName(v.Selector, v.Domain))]
	c.mu.Unlock()
	if len(txts) != 1 {
		return
	}
	k, _ := AuditKeyRecord(txts[0])
	if k == nil {
		return
	}
	v.KeyBits, v.Testing = k.Bits, k.Testing
	if v.Result != ResultPass || !slices.Contains(k.Flags, "s") {
		return
	}
	_, idomain, _ := strings.Cut(v.Identifier, "@")
	if !strings.EqualFold(idomain, v.Domain) {
		v.Result, v.Code = ResultFail, CodeIdentityMismatch
		v.Reason = "the key has t=s, so i= must be in exactly d=" + v.Domain + ", not " + idomain
	}
}

// describe reads the tags of a DKIM-Signature value for reporting; when
// the tag-list is malformed the result is already permerror.
func describe(value string) Verification {
	v := Verification{BodyLength: -1}
	tags, err := ParseTagList(value)
	if err != nil {
		v.Result, v.Code = ResultPermError, CodeMalformedSignature
		v.Reason = "malformed tag-list: " + err.Error()
		return v
	}
	get := func(n string) string { s, _ := tags.Get(n); return StripFWS(s) }
	v.Domain, v.Selector, v.Algorithm = get("d"), get("s"), get("a")
	v.Identifier = get("i")
	if v.Identifier == "" && v.Domain != "" {
		v.Identifier = "@" + v.Domain
	}
	v.Canonicalization = get("c")
	if v.Canonicalization == "" {
		v.Canonicalization = "simple/simple" // §3.5: c= defaults to simple/simple
	} else if !strings.Contains(v.Canonicalization, "/") {
		v.Canonicalization += "/simple" // §3.5: body defaults to simple
	}
	v.HeaderKeys = SplitList(get("h"))
	if l := get("l"); l != "" {
		if n, err := strconv.ParseInt(l, 10, 64); err == nil {
			v.BodyLength = n
		}
	}
	if t := get("t"); t != "" {
		if n, err := strconv.ParseInt(t, 10, 64); err == nil {
			v.Signed = time.Unix(n, 0).UTC()
		}
	}
	if x := get("x"); x != "" {
		if n, err := strconv.ParseInt(x, 10, 64); err == nil {
			v.Expires = time.Unix(n, 0).UTC()
		}
	}
	return v
}

// classify maps go-msgauth's error for one signature to a result, a
// stable code and a reason. go-msgauth's errors are unexported types, so
// the text is matched; verify_test.go pins every branch.
func classify(err error, v Verification) (result, code, reason string) {
	if err == nil {
		return ResultPass, "", ""
	}
	msg := strings.TrimPrefix(err.Error(), "dkim: ")
	has := func(s string) bool { return strings.Contains(msg, s) }
	switch {
	case msgdkim.IsTempFail(err):
		return ResultTempError, CodeKeyUnavailable, "key unavailable: DNS lookup of " + RecordName(v.Selector, v.Domain) + " failed"
	case has("body hash did not verify"):
		return ResultFail, CodeBodyHashMismatch, "body hash mismatch: the body changed after signing"
	case has("signature did not verify"):
		return ResultFail, CodeSignatureMismatch, "signature mismatch: the signed header fields changed or the key does not match"
	case has("insecure body length tag"):
		return ResultNeutral, CodeBodyLength, fmt.Sprintf("l=%d used: only part of the body is signed, so the signature is not trusted", v.BodyLength)
	case has("signature has expired"):
		return ResultPermError, CodeSignatureExpired, "signature expired (x=" + v.Expires.Format(time.RFC3339) + ")"
	case has("no key for signature"), has("no valid key found"):
		return ResultPermError, CodeKeyNotFound, "key not found: no record at " + RecordName(v.Selector, v.Domain)
	case has("multiple TXT records"):
		return ResultPermError, CodeSeveralRecords, "several TXT records at " + RecordName(v.Selector, v.Domain)
	case has("key revoked"):
		return ResultPermError, CodeKeyRevoked, "key revoked (empty p=)"
	case has("key is too short"):
		return ResultPermError, CodeKeyTooShort, msg
	case has("incompatible public key version"):
		return ResultPermError, CodeBadVersion, "key record has a v= other than DKIM1"
	case has("key syntax error"), has("key record error"), has("invalid Ed25519 public key size"):
		return ResultPermError, CodeKeyDecode, "key record unusable: " + msg
	case has("unsupported key algorithm"):
		return ResultPermError, CodeUnknownKeyType, "key record has an unknown k="
	case has("inappropriate key algorithm"):
		return ResultPermError, CodeKeyTypeMismatch, "a=" + v.Algorithm + " does not match the key record's k="
	case has("inappropriate hash algorithm"):
		return ResultPermError, CodeHashRestricted, "key record's h= does not allow this hash"
	case has("inappropriate service"):
		return ResultPermError, CodeServiceRestricted, "key record's s= does not allow email"
	case has("hash algorithm too weak"):
		return ResultPermError, CodeWeakHash, "rsa-sha1 is not accepted (RFC 8301 §3.1)"
	case has("From field not signed"):
		return ResultPermError, CodeFromNotSigned, "h= does not include From (RFC 6376 §5.4)"
	case has("domain mismatch"):
		return ResultPermError, CodeIdentityMismatch, "i= is not in d= or a subdomain of it"
	case has("incompatible signature version"), has("missing required tag"), has("malformed"),
		has("unsupported"), has("duplicate tag"):
		return ResultPermError, CodeMalformedSignature, msg
	}
	return ResultPermError, CodeVerifyError, msg
}
