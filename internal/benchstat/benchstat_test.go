package benchstat

import (
	"strings"
	"testing"
)

func TestSummarize(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want Summary
	}{
		{nil, Summary{}},
		{[]float64{3}, Summary{1, 3, 3, 3}},
		{[]float64{5, 1, 3}, Summary{3, 1, 3, 5}},
		{[]float64{4, 1, 3, 2}, Summary{4, 1, 2.5, 4}},
	} {
		if got := Summarize(tc.in); got != tc.want {
			t.Errorf("Summarize(%v) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
	s := Summarize([]float64{1.0, 1.1, 1.2})
	if s.Noisy() || !Summarize([]float64{1.0, 1.1, 1.25}).Noisy() {
		t.Errorf("spread: %v %v", s.Spread(), Summarize([]float64{1.0, 1.1, 1.25}).Spread())
	}
	if got := s.Format("%.2f"); got != "1.10 (1.00–1.20)" {
		t.Errorf("Format: %q", got)
	}
	if r := Ratios([]float64{2, 3, 9}, []float64{1, 0}); len(r) != 1 || r[0] != 2 {
		t.Errorf("Ratios: %v", r)
	}
}

func TestReplaceSection(t *testing.T) {
	doc := []byte("# Title\n\nprose\n")
	doc = ReplaceSection(doc, "a", "table 1")
	doc = ReplaceSection(doc, "b", "table 2\n")
	doc = []byte(strings.Replace(string(doc), "prose", "prose edited by hand", 1))
	doc = ReplaceSection(doc, "a", "table 3\n")
	want := "# Title\n\nprose edited by hand\n" +
		"<!-- begin generated: a -->\ntable 3\n<!-- end generated: a -->\n" +
		"<!-- begin generated: b -->\ntable 2\n<!-- end generated: b -->\n"
	if string(doc) != want {
		t.Errorf("got\n%s\nwant\n%s", doc, want)
	}
	if body, ok := Section(doc, "b"); !ok || body != "table 2\n" {
		t.Errorf("Section: %q %v", body, ok)
	}
	if _, ok := Section(doc, "c"); ok {
		t.Error("Section c found")
	}
}
