package spf

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// macroToken is one piece of a macro-string: a literal, or a macro-expand
// "%{" letter transformers delimiters "}" (RFC 7208 §7.1).
type macroToken struct {
	lit     string // literal text (with %%, %_ and %- already decoded)
	letter  byte   // lower-case macro letter; 0 for a literal
	upper   bool   // URL-escape the expansion (§7.3)
	digits  int    // keep this many right-hand parts; 0 = all
	reverse bool
	delims  string // "" means "."
}

// parseMacroString tokenises a macro-string. exp allows the c, r and t
// letters, which are valid only in explanation strings (§7.2).
func parseMacroString(s string, exp bool) ([]macroToken, error) {
	var toks []macroToken
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			toks = append(toks, macroToken{lit: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '%' {
			if !exp && (c < 0x21 || c > 0x7e) { // macro-literal = %x21-24 / %x26-7E
				return nil, fmt.Errorf("invalid character 0x%02x", c)
			}
			lit.WriteByte(c)
			continue
		}
		if i+1 >= len(s) {
			return nil, fmt.Errorf("'%%' at the end of %q", s)
		}
		switch s[i+1] {
		case '%':
			lit.WriteByte('%')
			i++
			continue
		case '_':
			lit.WriteByte(' ')
			i++
			continue
		case '-':
			lit.WriteString("%20")
			i++
			continue
		case '{':
		default:
			return nil, fmt.Errorf("invalid macro %q (use %%%% for a literal '%%')", s[i:i+2])
		}
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			return nil, fmt.Errorf("unterminated macro in %q", s)
		}
		body := s[i+2 : i+end]
		tok, err := parseMacroBody(body, exp)
		if err != nil {
			return nil, err
		}
		flush()
		toks = append(toks, tok)
		i += end
	}
	flush()
	if len(toks) == 0 {
		toks = append(toks, macroToken{})
	}
	return toks, nil
}

func parseMacroBody(body string, exp bool) (macroToken, error) {
	if body == "" {
		return macroToken{}, fmt.Errorf("empty macro %%{}")
	}
	t := macroToken{letter: body[0]}
	if t.letter >= 'A' && t.letter <= 'Z' {
		t.upper = true
		t.letter += 'a' - 'A'
	}
	switch t.letter {
	case 's', 'l', 'o', 'd', 'i', 'p', 'h', 'v':
	case 'c', 'r', 't': // RFC 7208 §7.2: only in "exp" text
		if !exp {
			return t, fmt.Errorf("macro letter %q is only allowed in explanations", body[0])
		}
	default:
		return t, fmt.Errorf("unknown macro letter %q", body[0])
	}
	rest := body[1:]
	n := 0
	for n < len(rest) && isDigit(rest[n]) {
		n++
	}
	if n > 0 {
		d, err := strconv.Atoi(rest[:n])
		if err != nil || d == 0 || d > 128 { // §7.3: zero is not allowed
			return t, fmt.Errorf("invalid macro transformer %q", rest[:n])
		}
		t.digits = d
		rest = rest[n:]
	}
	if strings.HasPrefix(rest, "r") || strings.HasPrefix(rest, "R") {
		t.reverse = true
		rest = rest[1:]
	}
	for i := 0; i < len(rest); i++ {
		if !strings.ContainsRune(".-+,/_=", rune(rest[i])) {
			return t, fmt.Errorf("invalid macro delimiter %q", rest[i])
		}
	}
	t.delims = rest
	return t, nil
}

// MacroContext holds the values macros expand to (RFC 7208 §7.2).
type MacroContext struct {
	Sender   string // %{s}: <sender>, "postmaster@domain" when it had no local-part
	Domain   string // %{d}: the current <domain>
	HELO     string // %{h}
	IP       net.IP // %{i}, %{c}, %{v}
	Receiver string // %{r}; "" → "unknown"
	Now      time.Time
	// Validated returns %{p}, the validated domain name of IP; nil → "unknown".
	Validated func() string
}

// Expand expands a macro-string. explanation allows the c, r and t
// letters (RFC 7208 §7.2).
func Expand(s string, mc *MacroContext, explanation bool) (string, error) {
	toks, err := parseMacroString(s, explanation)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, t := range toks {
		if t.letter == 0 {
			b.WriteString(t.lit)
			continue
		}
		v := transform(mc.value(t.letter), t)
		if t.upper {
			v = urlEscape(v)
		}
		b.WriteString(v)
	}
	return b.String(), nil
}

func (mc *MacroContext) value(letter byte) string {
	local, domain := splitSender(mc.Sender)
	switch letter {
	case 's':
		return mc.Sender
	case 'l':
		return local
	case 'o':
		return domain
	case 'd':
		return mc.Domain
	case 'i':
		return dotIP(mc.IP)
	case 'p':
		if mc.Validated != nil {
			return mc.Validated()
		}
		return "unknown"
	case 'h':
		return mc.HELO
	case 'v':
		if mc.IP.To4() != nil {
			return "in-addr"
		}
		return "ip6"
	case 'c':
		if ip4 := mc.IP.To4(); ip4 != nil {
			return ip4.String()
		}
		return mc.IP.String()
	case 'r':
		if mc.Receiver == "" {
			return "unknown"
		}
		return mc.Receiver
	case 't':
		now := mc.Now
		if now.IsZero() {
			now = time.Now()
		}
		return strconv.FormatInt(now.Unix(), 10)
	}
	return ""
}

// splitSender splits local-part@domain at the last '@'; an empty local
// part becomes "postmaster" (RFC 7208 §4.3).
func splitSender(s string) (local, domain string) {
	i := strings.LastIndexByte(s, '@')
	if i < 0 {
		return "postmaster", s
	}
	local, domain = s[:i], s[i+1:]
	if local == "" {
		local = "postmaster"
	}
	return local, domain
}

// dotIP is %{i}: dotted quad for IPv4, dot-separated nibbles for IPv6
// (RFC 7208 §7.3).
func dotIP(ip net.IP) string {
	if ip4 := ip.To4(); ip4 != nil {
		return ip4.String()
	}
	ip16 := ip.To16()
	if ip16 == nil {
		return ""
	}
	const hexd = "0123456789abcdef"
	b := make([]byte, 0, 63)
	for i, x := range ip16 {
		if i > 0 {
			b = append(b, '.')
		}
		b = append(b, hexd[x>>4], '.', hexd[x&0xf])
	}
	return string(b)
}

// transform applies the digit, reverse and delimiter transformers
// (RFC 7208 §7.3).
func transform(v string, t macroToken) string {
	if t.digits == 0 && !t.reverse && t.delims == "" {
		return v
	}
	delims := t.delims
	if delims == "" {
		delims = "."
	}
	parts := splitAny(v, delims)
	if t.reverse {
		for i, j := 0, len(parts)-1; i < j; i, j = i+1, j-1 {
			parts[i], parts[j] = parts[j], parts[i]
		}
	}
	if t.digits > 0 && t.digits < len(parts) {
		parts = parts[len(parts)-t.digits:]
	}
	return strings.Join(parts, ".")
}

func splitAny(s, delims string) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(delims, s[i]) >= 0 {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// urlEscape escapes every character outside RFC 3986's unreserved set
// (ALPHA / DIGIT / "-" / "." / "_" / "~"), as RFC 7208 §7.3 requires for
// upper-case macro letters.
func urlEscape(s string) string {
	const hexd = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if isAlpha(c) || isDigit(c) || c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexd[c>>4])
		b.WriteByte(hexd[c&0xf])
	}
	return b.String()
}
