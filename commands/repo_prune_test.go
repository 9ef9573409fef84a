package commands

import "testing"

// TestParseMaxUnused checks the forms --max-unused accepts and refuses.
func TestParseMaxUnused(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want float64
		ok   bool
	}{
		{"5%", 0.05, true},
		{"5 %", 0.05, true},
		{" 5% ", 0.05, true},
		{"5", 0.05, true},
		{"100%", 1, true},
		{"0", -1, true},
		{"unlimited", 1, true},
		{" Unlimited ", 1, true},
		{"101%", 0, false},
		{"-1%", 0, false},
		{"5%%", 0, false},
		{"", 0, false},
		{"NaN", 0, false},
		{"five", 0, false},
	} {
		got, err := parseMaxUnused(tc.in)
		if (err == nil) != tc.ok || (tc.ok && got != tc.want) {
			t.Errorf("parseMaxUnused(%q) = %v, %v; want %v (ok %v)", tc.in, got, err, tc.want, tc.ok)
		}
	}
}
