package cmdutil

import (
	"fmt"
	"io"
	"strings"

	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"

	"github.com/relayctl/relayctl/pkg/report"
)

// Width is the column budget for human output.
const Width = 80

// Styles renders human output; with colour off every style is plain text.
type Styles struct {
	Pass, Warn, Fail, Info, Dim, Bold, Heading lipgloss.Style
	Color                                      bool
}

// NewStyles returns styles for w, coloured only when color is true.
func NewStyles(w io.Writer, color bool) *Styles {
	r := lipgloss.NewRenderer(w)
	if color {
		r.SetColorProfile(termenv.ANSI256)
	} else {
		r.SetColorProfile(termenv.Ascii)
	}
	return &Styles{
		Pass:    r.NewStyle().Foreground(lipgloss.Color("2")).Bold(true),
		Warn:    r.NewStyle().Foreground(lipgloss.Color("3")).Bold(true),
		Fail:    r.NewStyle().Foreground(lipgloss.Color("1")).Bold(true),
		Info:    r.NewStyle().Foreground(lipgloss.Color("6")),
		Dim:     r.NewStyle().Faint(true),
		Bold:    r.NewStyle().Bold(true),
		Heading: r.NewStyle().Bold(true).Underline(true),
		Color:   color,
	}
}

// Status renders a status word, e.g. "PASS".
func (s *Styles) Status(st report.Status) string {
	word := strings.ToUpper(string(st))
	switch st {
	case report.StatusPass:
		return s.Pass.Render(word)
	case report.StatusWarn:
		return s.Warn.Render(word)
	case report.StatusFail:
		return s.Fail.Render(word)
	}
	return s.Fail.Render(word)
}

// Severity renders a severity marker of fixed width.
func (s *Styles) Severity(sev report.Severity) string {
	switch sev {
	case report.SeverityError:
		return s.Fail.Render("error  ")
	case report.SeverityWarning:
		return s.Warn.Render("warning")
	}
	return s.Info.Render("info   ")
}

// WriteFindings prints findings, one per block, wrapped to Width.
func (s *Styles) WriteFindings(w io.Writer, findings []report.Finding) {
	for _, f := range findings {
		fmt.Fprintf(w, "  %s %s\n", s.Severity(f.Severity), s.Dim.Render(f.Code))
		for _, line := range Wrap(f.Message, Width-12) {
			fmt.Fprintf(w, "%10s%s\n", "", line)
		}
	}
}

// WriteSummary prints "relayctl check spf example.com: PASS (2 warnings)".
func (s *Styles) WriteSummary(w io.Writer, r *report.Report) {
	var e, wn int
	for _, f := range r.Findings {
		switch f.Severity {
		case report.SeverityError:
			e++
		case report.SeverityWarning:
			wn++
		}
	}
	fmt.Fprintf(w, "%s %s: %s", r.Command, r.Target, s.Status(r.Status))
	if e+wn > 0 {
		fmt.Fprintf(w, " (%d error(s), %d warning(s))", e, wn)
	}
	fmt.Fprintln(w)
}

// Wrap breaks text into lines of at most width runes at spaces (a single
// longer word stays whole).
func Wrap(text string, width int) []string {
	var lines []string
	for _, para := range strings.Split(text, "\n") {
		words := strings.Fields(para)
		line := ""
		for _, word := range words {
			switch {
			case line == "":
				line = word
			case len([]rune(line))+1+len([]rune(word)) <= width:
				line += " " + word
			default:
				lines = append(lines, line)
				line = word
			}
		}
		lines = append(lines, line)
	}
	return lines
}
