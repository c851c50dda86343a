package dkim

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"

	"github.com/relayctl/relayctl/pkg/report"
)

// Finding codes for key records (documented in docs/dkim.md).
const (
	CodeRecordMissing     = "dkim.record-missing"     // no TXT record at the selector name
	CodeSeveralRecords    = "dkim.several-records"    // more than one TXT record (RFC 6376 §3.6.2.2)
	CodeRecordSyntax      = "dkim.record-syntax"      // the tag-list does not parse (§3.2)
	CodeBadVersion        = "dkim.bad-version"        // v= is not DKIM1 (§3.6.1)
	CodeVersionNotFirst   = "dkim.version-not-first"  // v= present but not the first tag (§3.6.1)
	CodeKeyMissing        = "dkim.key-missing"        // no p= tag
	CodeKeyRevoked        = "dkim.key-revoked"        // empty p= (§3.6.1)
	CodeUnknownKeyType    = "dkim.unknown-key-type"   // k= other than rsa or ed25519
	CodeKeyDecode         = "dkim.key-decode"         // p= is not base64 or not a public key
	CodeKeyTypeMismatch   = "dkim.key-type-mismatch"  // p= holds a different key type than k= says
	CodeKeyTooShort       = "dkim.key-too-short"      // RSA < 1024 bits (RFC 8301 §3.2)
	CodeKeyShort          = "dkim.key-short"          // RSA < 2048 bits (RFC 8301 §3.2 SHOULD)
	CodeKeyPKCS1          = "dkim.key-pkcs1"          // RSAPublicKey instead of SubjectPublicKeyInfo
	CodeSplitQuotes       = "dkim.split-quotes"       // quote characters inside the key: a TXT split mistake
	CodeSplitWhitespace   = "dkim.split-whitespace"   // whitespace inside the key
	CodeTesting           = "dkim.testing"            // t=y (§3.6.1)
	CodeStrictIdentity    = "dkim.strict-identity"    // t=s: i= must equal d=
	CodeHashRestricted    = "dkim.hash-restricted"    // h= excludes sha256
	CodeServiceRestricted = "dkim.service-restricted" // s= excludes email
	CodeUnknownTag        = "dkim.unknown-tag"        // a tag RFC 6376 does not define
	CodeCNAME             = "dkim.cname"              // the selector name is delegated by CNAME
	CodeNoSelector        = "dkim.no-selector-found"  // discovery found none of the common selectors
	CodeWildcard          = "dkim.wildcard"           // *._domainkey answers for any selector
	CodeLookupFailed      = "dkim.lookup-failed"      // a DNS query failed: the audit is incomplete
	CodeTruncated         = "dkim.truncated"          // a 255-byte record whose key does not decode
	CodeSplitRecords      = "dkim.split-records"      // one key published as several TXT records
	CodeNotAKeyRecord     = "dkim.not-a-key-record"   // the TXT record is something else (SPF, DMARC…)
	CodeEd25519SPKI       = "dkim.ed25519-spki"       // Ed25519 p= holds an SPKI, not the raw 32 bytes
)

// KeyRecord is a parsed DKIM key record (RFC 6376 §3.6.1).
type KeyRecord struct {
	Raw      string   `json:"raw"`
	Tags     TagList  `json:"tags,omitempty"`
	Version  string   `json:"version,omitempty"`
	KeyType  string   `json:"key_type"` // "rsa" when k= is absent
	Hashes   []string `json:"hashes,omitempty"`
	Services []string `json:"services,omitempty"`
	Flags    []string `json:"flags,omitempty"`
	Notes    string   `json:"notes,omitempty"`
	Bits     int      `json:"bits,omitempty"` // RSA modulus size, 256 for Ed25519
	Revoked  bool     `json:"revoked,omitempty"`
	Testing  bool     `json:"testing,omitempty"`
	// Key is the decoded public key (*rsa.PublicKey or ed25519.PublicKey),
	// nil when it does not decode.
	Key crypto.PublicKey `json:"-"`
}

var knownKeyTags = map[string]bool{"v": true, "h": true, "k": true, "n": true, "p": true, "s": true, "t": true}

// AuditKeyRecord parses a key record (the TXT strings joined) and returns
// what a verifier would find wrong with it. The record is nil only when
// the tag-list does not parse.
func AuditKeyRecord(raw string) (*KeyRecord, []report.Finding) {
	k, fs := auditKeyRecord(raw)
	if len(raw) == 255 && slices.ContainsFunc(fs, func(f report.Finding) bool { return f.Code == CodeKeyDecode }) {
		fs = append(fs, report.Finding{Code: CodeTruncated, Severity: report.SeverityError,
			Message: "the record is exactly 255 bytes and its key does not decode: it was probably cut at the 255-byte limit of one TXT string; publish the value as several strings (relayctl dkim keygen prints them)"})
	}
	return k, fs
}

func auditKeyRecord(raw string) (*KeyRecord, []report.Finding) {
	var fs []report.Finding
	add := func(code string, sev report.Severity, format string, args ...any) {
		fs = append(fs, report.Finding{Code: code, Severity: sev, Message: fmt.Sprintf(format, args...)})
	}
	low := strings.ToLower(strings.TrimSpace(raw))
	for _, p := range []string{"v=spf1", "v=dmarc1", "v=sts", "v=tlsrptv1", "v=bimi1"} {
		if strings.HasPrefix(low, p) {
			add(CodeNotAKeyRecord, report.SeverityError, "the TXT record is not a DKIM key record (it starts %q)", raw[:len(p)])
			return nil, fs
		}
	}
	tags, err := ParseTagList(raw)
	if err != nil {
		add(CodeRecordSyntax, report.SeverityError, "key record does not parse as a tag-list (RFC 6376 §3.2): %v", err)
		return nil, fs
	}
	k := &KeyRecord{Raw: raw, Tags: tags, KeyType: "rsa"}

	if v, ok := tags.Get("v"); ok { // §3.6.1: if present, MUST be DKIM1 and first
		k.Version = v
		if v != "DKIM1" {
			add(CodeBadVersion, report.SeverityError, "v=%s: the version must be exactly DKIM1; verifiers ignore this record", v)
		} else if tags[0].Name != "v" {
			add(CodeVersionNotFirst, report.SeverityWarning, "v=DKIM1 must be the first tag of the record (RFC 6376 §3.6.1); strict verifiers reject it")
		}
	}
	for _, t := range tags {
		if !knownKeyTags[t.Name] {
			if t.Name == "g" {
				add(CodeUnknownTag, report.SeverityInfo, "g= is DomainKeys/RFC 4871 granularity, removed by RFC 6376; verifiers ignore it")
			} else {
				add(CodeUnknownTag, report.SeverityInfo, "unknown tag %q is ignored by verifiers (RFC 6376 §3.6.1)", t.Name)
			}
		}
	}
	if v, ok := tags.Get("k"); ok {
		k.KeyType = strings.TrimSpace(StripFWS(v))
	}
	if v, ok := tags.Get("h"); ok {
		k.Hashes = SplitList(v)
		if !slices.Contains(k.Hashes, "sha256") {
			add(CodeHashRestricted, report.SeverityError, "h=%s does not allow sha256: signatures made with rsa-sha256 or ed25519-sha256 cannot verify (rsa-sha1 is forbidden by RFC 8301)", v)
		}
	}
	if v, ok := tags.Get("s"); ok {
		k.Services = SplitList(v)
		if !slices.Contains(k.Services, "*") && !slices.Contains(k.Services, "email") {
			add(CodeServiceRestricted, report.SeverityError, "s=%s does not include email or *: verifiers must not use this key for mail", v)
		}
	}
	if v, ok := tags.Get("n"); ok {
		k.Notes = v
	}
	if v, ok := tags.Get("t"); ok {
		k.Flags = SplitList(v)
		if slices.Contains(k.Flags, "y") {
			k.Testing = true
			add(CodeTesting, report.SeverityWarning, "t=y: the domain is testing DKIM; verifiers must not treat its mail differently from unsigned mail (RFC 6376 §3.6.1)")
		}
		if slices.Contains(k.Flags, "s") {
			add(CodeStrictIdentity, report.SeverityInfo, "t=s: signatures with this key must have i= in exactly d=, not a subdomain")
		}
	}

	p, ok := tags.Get("p")
	switch {
	case !ok:
		add(CodeKeyMissing, report.SeverityError, "the record has no p= tag (the public key is required)")
		return k, fs
	case StripFWS(p) == "":
		k.Revoked = true
		add(CodeKeyRevoked, report.SeverityError, "p= is empty: the key is revoked and every signature made with it fails")
		return k, fs
	}
	if strings.ContainsAny(p, `"'`) {
		add(CodeSplitQuotes, report.SeverityError, "p= contains quote characters: the TXT record was split by hand and the quotes ended up inside the value; publish the key as separate quoted strings with nothing between them")
		return k, fs
	}
	if strings.ContainsAny(p, " \t\r\n") {
		add(CodeSplitWhitespace, report.SeverityWarning, "p= contains whitespace (a split mistake?); RFC 6376 tolerates it but some verifiers do not: publish the base64 without spaces")
	}
	if strings.Contains(p, `\`) {
		add(CodeKeyDecode, report.SeverityError, "p= contains a backslash: the zone escaped a character that belongs in base64")
		return k, fs
	}
	der, err := base64.StdEncoding.DecodeString(StripFWS(p))
	if err != nil {
		add(CodeKeyDecode, report.SeverityError, "p= is not valid base64: %v", err)
		return k, fs
	}
	switch k.KeyType {
	case "rsa":
		auditRSA(k, der, add)
	case "ed25519":
		switch len(der) {
		case ed25519.PublicKeySize: // RFC 8463 §4.2: the raw 32-byte key
			k.Key, k.Bits = ed25519.PublicKey(der), 256
		default:
			if pub, err := x509.ParsePKIXPublicKey(der); err == nil {
				if epk, ok := pub.(ed25519.PublicKey); ok {
					add(CodeEd25519SPKI, report.SeverityError, "k=ed25519 but p= holds a SubjectPublicKeyInfo; RFC 8463 §4.2 wants the raw 32-byte key: p=%s", base64.StdEncoding.EncodeToString(epk))
					return k, fs
				}
			}
			add(CodeKeyDecode, report.SeverityError, "k=ed25519 needs a 32-byte key in p=, it holds %d bytes", len(der))
		}
	default:
		add(CodeUnknownKeyType, report.SeverityError, "k=%s is not a key type verifiers know (rsa, ed25519)", k.KeyType)
	}
	return k, fs
}

func auditRSA(k *KeyRecord, der []byte, add func(string, report.Severity, string, ...any)) {
	var rpk *rsa.PublicKey
	if pub, err := x509.ParsePKIXPublicKey(der); err == nil {
		switch pk := pub.(type) {
		case *rsa.PublicKey:
			rpk = pk
		case ed25519.PublicKey:
			add(CodeKeyTypeMismatch, report.SeverityError, "p= holds an Ed25519 key but k= is rsa (or absent): add k=ed25519 and publish the raw 32-byte key")
			return
		default:
			add(CodeKeyTypeMismatch, report.SeverityError, "p= holds a %T, not an RSA key", pub)
			return
		}
	} else if pk, err2 := x509.ParsePKCS1PublicKey(der); err2 == nil {
		rpk = pk
		add(CodeKeyPKCS1, report.SeverityWarning, "p= is a bare RSAPublicKey; RFC 6376 §3.6.1 wants SubjectPublicKeyInfo (erratum 3017) and some verifiers reject this form")
	} else {
		add(CodeKeyDecode, report.SeverityError, "p= does not hold an RSA public key: %v", err)
		return
	}
	k.Key, k.Bits = rpk, rpk.N.BitLen()
	switch {
	case k.Bits < MinRSABits:
		add(CodeKeyTooShort, report.SeverityError, "RSA key is %d bits: verifiers must not accept keys under 1024 bits (RFC 8301 §3.2)", k.Bits)
	case k.Bits < RecommendedRSABits:
		add(CodeKeyShort, report.SeverityWarning, "RSA key is %d bits: signers should use at least 2048 (RFC 8301 §3.2); some receivers distrust 1024", k.Bits)
	}
}
