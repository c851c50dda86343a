package dkim

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Key algorithms for GenerateKey.
const (
	AlgoRSA     = "rsa"
	AlgoEd25519 = "ed25519"
)

// MinRSABits is the smallest RSA key verifiers accept (RFC 8301 §3.2);
// RecommendedRSABits the smallest signers should use.
const (
	MinRSABits         = 1024
	RecommendedRSABits = 2048
	MaxRSABits         = 8192
)

// GenerateKey makes a new signing key: RSA of the given size, or Ed25519
// (RFC 8463; bits is ignored).
func GenerateKey(algo string, bits int) (crypto.Signer, error) {
	switch strings.ToLower(algo) {
	case AlgoRSA, "":
		if bits < MinRSABits {
			return nil, fmt.Errorf("dkim: RSA keys under %d bits are refused by verifiers (RFC 8301 §3.2); asked for %d", MinRSABits, bits)
		}
		if bits > MaxRSABits {
			return nil, fmt.Errorf("dkim: RSA keys over %d bits do not fit a DNS TXT record comfortably; asked for %d", MaxRSABits, bits)
		}
		k, err := rsa.GenerateKey(rand.Reader, bits)
		if err != nil {
			return nil, fmt.Errorf("dkim: generating RSA key: %w", err)
		}
		return k, nil
	case AlgoEd25519:
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("dkim: generating Ed25519 key: %w", err)
		}
		return k, nil
	}
	return nil, fmt.Errorf("dkim: unknown key algorithm %q (want rsa or ed25519)", algo)
}

// MarshalPrivateKey encodes a key as PEM PKCS#8 ("PRIVATE KEY").
func MarshalPrivateKey(k crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("dkim: encoding private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// KeyInfo describes a public key: its algorithm, size, and the p= value.
func KeyInfo(pub crypto.PublicKey) (algo string, bits int, p string, err error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		der, err := x509.MarshalPKIXPublicKey(k) // RFC 6376 §3.6.1: SubjectPublicKeyInfo
		if err != nil {
			return "", 0, "", fmt.Errorf("dkim: encoding public key: %w", err)
		}
		return AlgoRSA, k.N.BitLen(), base64.StdEncoding.EncodeToString(der), nil
	case ed25519.PublicKey:
		return AlgoEd25519, 256, base64.StdEncoding.EncodeToString(k), nil // RFC 8463 §4.2: raw key
	}
	return "", 0, "", fmt.Errorf("dkim: unsupported public key type %T", pub)
}

// Record is a DNS key record ready to publish.
type Record struct {
	Name     string   `json:"name"`      // selector._domainkey.domain (no trailing dot)
	Value    string   `json:"value"`     // the whole TXT value
	Strings  []string `json:"strings"`   // the value split into ≤255-byte character-strings
	ZoneLine string   `json:"zone_line"` // an RFC 1035 master-file line
}

// RecordName is the DNS name of a selector's key record (RFC 6376 §3.6.2.1).
func RecordName(selector, domain string) string {
	return strings.TrimSuffix(selector, ".") + "._domainkey." + strings.TrimSuffix(domain, ".")
}

// NewRecord builds the key record for pub at selector._domainkey.domain.
func NewRecord(selector, domain string, pub crypto.PublicKey) (*Record, error) {
	algo, _, p, err := KeyInfo(pub)
	if err != nil {
		return nil, err
	}
	value := "v=DKIM1; k=" + algo + "; p=" + p
	r := &Record{Name: RecordName(selector, domain), Value: value, Strings: SplitTXT(value)}
	quoted := make([]string, len(r.Strings))
	for i, s := range r.Strings {
		quoted[i] = `"` + s + `"`
	}
	r.ZoneLine = r.Name + ". IN TXT " + strings.Join(quoted, " ")
	return r, nil
}

// SplitTXT splits a TXT value into character-strings of at most 255 bytes
// (RFC 1035 §3.3.14); verifiers join them without separators
// (RFC 6376 §3.6.2.2).
func SplitTXT(value string) []string {
	var out []string
	for len(value) > 255 {
		out = append(out, value[:255])
		value = value[255:]
	}
	return append(out, value)
}

// ErrExists is returned by WriteKeyFile when the file exists and force is
// not set.
var ErrExists = errors.New("dkim: key file exists (use --force to overwrite)")

// WriteKeyFile writes a PEM key with mode 0600. It never replaces an
// existing file unless force is set; then it writes a temporary file in
// the same directory and renames it over the old one.
func WriteKeyFile(path string, pemBytes []byte, force bool) error {
	if !force {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			if errors.Is(err, os.ErrExist) {
				return fmt.Errorf("%s: %w", path, ErrExists)
			}
			return fmt.Errorf("dkim: writing key: %w", err)
		}
		if _, err := f.Write(pemBytes); err != nil {
			f.Close()
			os.Remove(path)
			return fmt.Errorf("dkim: writing key: %w", err)
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return fmt.Errorf("dkim: writing key: %w", err)
		}
		return f.Close()
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".dkimkey-*")
	if err != nil {
		return fmt.Errorf("dkim: writing key: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("dkim: writing key: %w", err)
	}
	if _, err := tmp.Write(pemBytes); err != nil {
		tmp.Close()
		return fmt.Errorf("dkim: writing key: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("dkim: writing key: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("dkim: writing key: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("dkim: writing key: %w", err)
	}
	return nil
}
