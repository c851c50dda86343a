package compose

import "testing"

func BenchmarkBuild(b *testing.B) {
	att := make([]byte, 100<<10)
	for i := range att {
		att[i] = byte(i)
	}
	m := &Message{From: "Shop <shop@example.com>", To: []string{"a@example.org"}, Subject: "Ihre Rechnung", Text: "Guten Tag,\nanbei die Rechnung.\n",
		HTML: "<p>Guten Tag</p>", Attachments: []Attachment{{Filename: "r.pdf", Data: att}}, Date: date}
	b.SetBytes(int64(len(att)))
	for b.Loop() {
		if _, err := m.Build(); err != nil {
			b.Fatal(err)
		}
	}
}
