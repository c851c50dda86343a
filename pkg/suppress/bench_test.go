package suppress

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// Check runs at every RCPT TO: with 10,000 entries it must stay cheap.
func BenchmarkCheck(b *testing.B) {
	s, err := Open(filepath.Join(b.TempDir(), "s.json"), DefaultPolicy(), nil)
	if err != nil {
		b.Fatal(err)
	}
	var in strings.Builder
	for i := range 10000 {
		fmt.Fprintf(&in, "user%d@example.org\n", i)
	}
	if _, err := s.Import(strings.NewReader(in.String()), ""); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, ok, err := s.Check("user5000@example.org"); !ok || err != nil {
			b.Fatal("not found")
		}
	}
}
