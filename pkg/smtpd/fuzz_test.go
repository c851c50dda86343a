package smtpd

import (
	"bytes"
	"strings"
	"testing"
)

// FuzzCheckLineEndings compares checkLineEndings with the plain
// definition: after replacing every CRLF, no CR or LF remains.
func FuzzCheckLineEndings(f *testing.F) {
	for _, s := range []string{"", "a\r\nb\r\n", "a\nb", "a\rb", "\r", "\n", "\r\r\n", "x\n.\n", "x\r.\r\n", "x\n.\r\n", "\r\n\r\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		off, err := checkLineEndings(b)
		clean := !bytes.ContainsAny(bytes.ReplaceAll(b, []byte("\r\n"), nil), "\r\n")
		if clean != (err == nil) {
			t.Fatalf("checkLineEndings(%q) = %d, %v; clean = %v", b, off, err, clean)
		}
		if err != nil && (off < 0 || off >= len(b) || (b[off] != '\r' && b[off] != '\n')) {
			t.Fatalf("offset %d does not point at CR/LF in %q", off, b)
		}
	})
}

// FuzzParseHeader: never panics, the end offset is in range and either
// the whole input or the start of a line, and From parsing never panics.
func FuzzParseHeader(f *testing.F) {
	for _, s := range []string{
		simpleMsg, "", "\r\n", "From: a@b\r\n folded\r\n\tmore\r\n\r\nbody",
		" leading continuation\r\n", "no colon line\r\n", "From: \"x\" <a@b>, c@d\r\n\r\n", ":empty name\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fields, end := parseHeader(b)
		if end < 0 || end > len(b) {
			t.Fatalf("end %d out of range", end)
		}
		if end != len(b) && end != 0 && !bytes.HasSuffix(b[:end], []byte("\r\n")) {
			t.Fatalf("end %d not at a line start in %q", end, b)
		}
		for _, fl := range fields {
			if fl.Name == "" || strings.ContainsAny(fl.Name, ": \t\r\n") {
				t.Fatalf("bad field name %q", fl.Name)
			}
		}
		_, _ = fromAddresses(fields)
	})
}
