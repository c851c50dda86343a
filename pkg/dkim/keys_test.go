package dkim_test

import (
	"crypto/ed25519"
	"encoding/base64"
	"math/big"
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

// new512 returns a 512-bit odd number standing in for a short RSA modulus
// (only its length matters to the record audit).
func new512() *big.Int {
	n := new(big.Int).Lsh(big.NewInt(1), 511)
	return n.Add(n, big.NewInt(12345))
}
