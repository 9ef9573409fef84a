package mboxname

import (
	"fmt"
	"sort"
	"strings"
)

// A Selector picks mailboxes of a dump by user (--user) and by name or
// pattern (--mailbox), and remembers which of its terms matched nothing,
// so that a typo is an error rather than a restore of nothing.
//
// A --user term selects the user's mailboxes, deleted ones (DELETED.user.
// <name>...) included. A --mailbox term is a name or a pattern, accepted
// in any of these forms (the union of what they mean is selected):
//
//   - the internal name: user.alice.Sent, example.com!user.bob.Drafts,
//     DELETED.user.alice.Gone.6B0F37A3, shared.news;
//   - the same with '/' as separator: user/alice/Sent (a '.' inside a
//     component is then a literal dot);
//   - a user's own name for it: alice/Sent, bob@example.com/Drafts, or,
//     with --user, INBOX/Sent, INBOX.Sent or plain Sent (relative to the
//     INBOX of each --user);
//   - in UTF-8 (Entwürfe) or modified UTF-7 (Entw&APw-rfe): UTF-8 is
//     converted as Cyrus converts it.
//
// In a pattern '*' matches any characters and '%' any but the hierarchy
// separator, as in Cyrus's LIST. With --mailbox terms, --user only gives
// the namespace of relative names; without them it selects every mailbox
// of the users.
//
// Call Match with every mailbox of the dump, then Err: it reports every
// term that matched nothing with the nearest names the dump holds.
type Selector struct {
	users []*term
	boxes []*term
}

type term struct {
	flag, given string
	user        string          // a --user term
	exact       map[string]bool // internal names without wildcards
	globs       []string        // internal-name patterns
	targets     []string        // what nearest names are measured against
	hits        int
	near        nearest
}

// NewSelector returns the selector of users and mailbox names or patterns;
// nil when both are empty (Match then selects everything). A malformed
// term is an error.
func NewSelector(users, mailboxes []string) (*Selector, error) {
	if len(users) == 0 && len(mailboxes) == 0 {
		return nil, nil
	}
	s := &Selector{}
	seen := map[string]bool{}
	for _, u := range users {
		if u == "" || strings.ContainsAny(u, "/!*% \t\r\n") {
			return nil, fmt.Errorf("--user %q: not a userid", u)
		}
		if seen[u] {
			continue
		}
		seen[u] = true
		s.users = append(s.users, &term{flag: "--user", given: u, user: u, targets: []string{u}})
	}
	for _, m := range mailboxes {
		t, err := s.mailboxTerm(m)
		if err != nil {
			return nil, err
		}
		s.boxes = append(s.boxes, t)
	}
	return s, nil
}

func (s *Selector) mailboxTerm(m string) (*term, error) {
	t := &term{flag: "--mailbox", given: m, exact: map[string]bool{}}
	if m == "" {
		return nil, fmt.Errorf("--mailbox %q: empty", m)
	}
	for i := 0; i < len(m); i++ {
		if m[i] < 0x20 || m[i] == 0x7f {
			return nil, fmt.Errorf("--mailbox %q: control character", m)
		}
	}
	add := func(name string) {
		t.targets = append(t.targets, name)
		if strings.ContainsAny(name, "*%") {
			t.globs = append(t.globs, name)
		} else {
			t.exact[name] = true
		}
	}
	domain, rest, hasDomain := strings.Cut(m, "!")
	if !hasDomain {
		domain, rest = "", m
	}
	sep := "."
	if strings.Contains(rest, "/") {
		sep = "/"
	}
	raw := strings.Split(rest, sep)
	comps := make([]string, len(raw))
	for i, c := range raw {
		if c == "" {
			return nil, fmt.Errorf("--mailbox %q: empty name component", m)
		}
		comps[i] = internalComponent(c)
	}
	withDomain := func(d, name string) string {
		if d != "" {
			return d + "!" + name
		}
		return name
	}
	joined := strings.Join(comps, ".")
	first := comps[0]
	isInbox := strings.EqualFold(raw[0], "INBOX")
	qualified := first == "user" || first == DeletedPrefix || hasDomain
	switch {
	case isInbox && len(s.users) == 0:
		return nil, fmt.Errorf("--mailbox %q: INBOX is a user's: say whose with --user", m)
	case isInbox:
		for _, u := range s.users {
			add(UserInbox(u.user) + strings.Join(append([]string{""}, comps[1:]...), "."))
		}
	case len(s.users) > 0 && !qualified:
		for _, u := range s.users {
			add(UserInbox(u.user) + "." + joined)
		}
	default:
		// As typed (internal, or '/' for '.'), then as a user's own
		// name with the userid first.
		add(withDomain(domain, joined))
		if !qualified {
			user := strings.ReplaceAll(first, "^", ".")
			add(UserInbox(user) + strings.Join(append([]string{""}, comps[1:]...), "."))
		}
	}
	return t, nil
}

// Active reports whether the selector selects anything less than all.
func (s *Selector) Active() bool { return s != nil }

// Match reports whether the mailbox is selected, given every name it goes
// by (its name in the dump, and the name it is restored under). It
// records which terms matched.
func (s *Selector) Match(names ...string) bool {
	if s == nil {
		return true
	}
	userHit := false
	var owners []string // of names, worked out once for all the --user terms
	if len(s.users) > 0 {
		owners = make([]string, len(names))
		for i, n := range names {
			owners[i] = DeletedOwner(n)
		}
	}
	for _, t := range s.users {
		hit := false
		for _, o := range owners {
			if o == t.user {
				hit = true
			}
		}
		if hit {
			t.hits++
			userHit = true
		} else if t.hits == 0 {
			for _, o := range owners {
				if o != "" {
					t.near.add(t.targets, o)
				}
			}
		}
	}
	if len(s.boxes) == 0 {
		return userHit
	}
	sel := false
	for _, t := range s.boxes {
		if t.match(names) {
			t.hits++
			sel = true
		} else if t.hits == 0 {
			for _, n := range names {
				t.near.add(t.targets, n)
			}
		}
	}
	return sel
}

func (t *term) match(names []string) bool {
	for _, n := range names {
		if t.exact[n] {
			return true
		}
		for _, g := range t.globs {
			if Glob(g, n) {
				return true
			}
		}
	}
	return false
}

// Glob reports whether an internal name matches a pattern of Cyrus's LIST:
// '*' matches any characters, '%' any but the separator '.'.
func Glob(pattern, name string) bool {
	// One row of the table "pattern[:i] matches name[:j]".
	prev := make([]bool, len(name)+1)
	cur := make([]bool, len(name)+1)
	prev[0] = true
	for i := 0; i < len(pattern); i++ {
		p := pattern[i]
		cur[0] = prev[0] && (p == '*' || p == '%')
		for j := 1; j <= len(name); j++ {
			c := name[j-1]
			switch p {
			case '*':
				cur[j] = prev[j] || cur[j-1]
			case '%':
				cur[j] = prev[j] || cur[j-1] && c != '.'
			default:
				cur[j] = prev[j-1] && c == p
			}
		}
		prev, cur = cur, prev
	}
	return prev[len(name)]
}

// NoMatchError reports the terms of a Selector that matched nothing.
type NoMatchError struct {
	Terms []NoMatch
}

// NoMatch is one term that matched nothing, with the nearest names (users
// for --user) the dump holds, nearest first.
type NoMatch struct {
	Flag, Given string
	Nearest     []string
}

func (e *NoMatchError) Error() string {
	var b strings.Builder
	for i, t := range e.Terms {
		if i > 0 {
			b.WriteString("; ")
		}
		what := "mailbox"
		if t.Flag == "--user" {
			what = "user's mailbox"
		}
		fmt.Fprintf(&b, "%s %s matches no %s in the dump", t.Flag, t.Given, what)
		if len(t.Nearest) > 0 {
			fmt.Fprintf(&b, " (nearest: %s)", strings.Join(t.Nearest, ", "))
		}
	}
	return b.String()
}

// Err returns a *NoMatchError for the terms that matched no mailbox
// passed to Match, or nil.
func (s *Selector) Err() error {
	if s == nil {
		return nil
	}
	var e NoMatchError
	for _, t := range append(append([]*term(nil), s.users...), s.boxes...) {
		if t.hits == 0 {
			e.Terms = append(e.Terms, NoMatch{Flag: t.flag, Given: t.given, Nearest: t.near.names()})
		}
	}
	if len(e.Terms) == 0 {
		return nil
	}
	return &e
}

// nearest keeps the few names closest to a target by edit distance.
type nearest struct {
	list []near
}

type near struct {
	dist int
	name string
}

const maxNearest = 5

func (n *nearest) add(targets []string, name string) {
	for _, x := range n.list {
		if x.name == name {
			return
		}
	}
	limit := 0 // no limit until the list is full
	if len(n.list) == maxNearest {
		limit = n.list[maxNearest-1].dist
	}
	d, lname := -1, strings.ToLower(name)
	for _, t := range targets {
		if k := EditDistance(strings.ToLower(t), lname, limit); d < 0 || k < d {
			d = k
		}
	}
	if limit > 0 && d >= limit {
		return
	}
	n.list = append(n.list, near{d, name})
	sort.SliceStable(n.list, func(i, j int) bool { return n.list[i].dist < n.list[j].dist })
	if len(n.list) > maxNearest {
		n.list = n.list[:maxNearest]
	}
}

func (n *nearest) names() []string {
	var out []string
	for _, x := range n.list {
		out = append(out, x.name)
	}
	return out
}
