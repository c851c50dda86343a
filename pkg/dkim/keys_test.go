package dkim_test

import (
	"crypto/ed25519"
	"encoding/base64"
	"testing"
)

func ed25519FromSeed(t testing.TB, b64 string) ed25519.PrivateKey {
	t.Helper()
	seed, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(seed) != ed25519.SeedSize {
		t.Fatalf("bad seed %q: %v", b64, err)
	}
	return ed25519.NewKeyFromSeed(seed)
}
