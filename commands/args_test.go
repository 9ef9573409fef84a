package commands

import (
	"strings"
	"testing"
)

// interspersed moves a command's flags before its arguments, using the
// command's own definitions to know which flags take a value.
func TestInterspersed(t *testing.T) {
	app := newApp(&env{out: &Outcome{}})
	for _, tc := range []struct{ in, want string }{
		{"mbtool verify x.dlist --json", "mbtool verify --json x.dlist"},
		{"mbtool -C c.conf dump user.alice -o - --user bob", "mbtool -C c.conf dump -o - --user bob user.alice"},
		{"mbtool dump user.alice --compress=none -q", "mbtool dump --compress=none -q user.alice"},
		{"mbtool verify -- -odd.dlist --json", "mbtool verify -- -odd.dlist --json"},
		{"mbtool verify a -- -b", "mbtool verify -- a -b"},
		{"mbtool restore - --dry-run", "mbtool restore --dry-run -"},
		{"mbtool nosuch a --json", "mbtool nosuch a --json"},
		{"mbtool dump a --us --generate-bash-completion", "mbtool dump --us a --generate-bash-completion"},
	} {
		got := interspersed(app, strings.Fields(tc.in))
		if s := strings.Join(got.args, " "); s != tc.want {
			t.Errorf("%s: got %s, want %s", tc.in, s, tc.want)
		}
	}
	p := interspersed(app, strings.Fields("mbtool verify x --json --quiet=false"))
	if !p.has("json") || p.has("quiet", "q") || p.command == nil || p.command.Name != "verify" {
		t.Errorf("flags %v of %v", p.flags, p.command)
	}
}
