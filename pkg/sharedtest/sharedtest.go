// Package sharedtest finds the conformance data that lives beside the
// repository in ../shared/testdata (the RFC 7208 SPF suite, DKIM vectors,
// DNSBL return codes). A fresh clone has no ../shared: tests that need it
// skip with a message saying so. The data is read in place, never copied.
package sharedtest

import (
	"os"
	"path/filepath"
	"testing"
)

// Dir returns ../shared/testdata/<sub> relative to the module root, or
// skips the test when it is absent.
func Dir(t testing.TB, sub string) string {
	t.Helper()
	root, err := moduleRoot()
	if err != nil {
		t.Skipf("conformance data: cannot find module root: %v", err)
	}
	dir := filepath.Join(root, "..", "shared", "testdata", sub)
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		t.Skipf("conformance data %s is absent (a fresh clone has no ../shared); skipping", dir)
	}
	return dir
}

// File returns the path of ../shared/testdata/<sub>/<name>, or skips.
func File(t testing.TB, sub, name string) string {
	t.Helper()
	p := filepath.Join(Dir(t, sub), name)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("conformance file %s is absent; skipping", p)
	}
	return p
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", os.ErrNotExist
		}
		dir = parent
	}
}
