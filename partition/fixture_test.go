package partition

import (
	"context"
	"encoding/json"
	"io/fs"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mbtool/mbtool/fixtures"
)

// The tests in this file read the real Cyrus 3.6 spool bundled in
// fixtures, and compare it with what Cyrus's tools and IMAP said about it
// when it was made (fixtures.Recorded). They need no Cyrus.

// openFixture unpacks the sample spool and returns it with its directory.
func openFixture(t testing.TB) (*Spool, string) {
	t.Helper()
	conf := fixtures.UnpackT(t)
	cfg, err := LoadConfig(conf)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s, filepath.Dir(conf)
}

func recorded(t testing.TB, dir, name string) string {
	t.Helper()
	b, err := fs.ReadFile(fixtures.Recorded, name)
	if err != nil {
		t.Fatal(err)
	}
	return strings.ReplaceAll(string(b), fixtures.Placeholder, dir)
}

func TestFixtureMbexamine(t *testing.T) {
	s, dir := openFixture(t)
	examine := func(names ...string) string {
		var b strings.Builder
		for _, n := range names {
			b.WriteString(recorded(t, dir, "mbexamine/"+n+".txt"))
		}
		return b.String()
	}
	entries := checkSpoolWithMbexamine(t, s, examine, filepath.Join(dir, "config"), filepath.Join(dir, "spool"))
	if len(entries) != 10 {
		t.Errorf("%d mailboxes", len(entries))
	}
}

func TestFixtureSeenQuota(t *testing.T) {
	s, dir := openFixture(t)
	for _, u := range []string{"alice", "bob"} {
		recs, err := s.ReadSeen(u)
		if err != nil {
			t.Fatal(err)
		}
		var got strings.Builder
		for _, r := range recs {
			got.WriteString(r.UniqueID + "\t" + string(r.Raw) + "\n")
		}
		if want := recorded(t, dir, "seen/"+u+".txt"); got.String() != want {
			t.Errorf("seen of %s:\n%s\nrecorded:\n%s", u, got.String(), want)
		}
	}
	q, err := s.ReadQuota("user.alice")
	if err != nil {
		t.Fatal(err)
	}
	var want Quota
	if err := ParseQuota([]byte(recorded(t, dir, "quota/user.alice.txt")), &want); err != nil {
		t.Fatal(err)
	}
	want.Root = "user.alice"
	if q.Limits[QuotaStorage] != 512000 || len(q.Limits) != 1 || q.Usage[QuotaNumFolders] != 7 ||
		q.Modseq != want.Modseq || !equalMaps(q.Usage, want.Usage) {
		t.Errorf("quota %+v, recorded %+v", q, want)
	}
}

func equalMaps(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// imapMailbox is one mailbox of fixtures' recorded IMAP views.
type imapMailbox struct {
	Name          string            `json:"name"`
	UIDValidity   uint32            `json:"uidvalidity"`
	UIDNext       uint32            `json:"uidnext"`
	HighestModSeq uint64            `json:"highestmodseq"`
	Exists        uint32            `json:"exists"`
	Metadata      map[string]string `json:"metadata"`
	Messages      []struct {
		UID          uint32            `json:"uid"`
		Flags        []string          `json:"flags"`
		InternalDate time.Time         `json:"internaldate"`
		Size         uint32            `json:"size"`
		ModSeq       uint64            `json:"modseq"`
		GUID         string            `json:"guid"`
		Annotations  map[string]string `json:"annotations"`
	} `json:"messages"`
}

// seqSetHas reports whether uid is in a seen set such as "1:3,7".
func seqSetHas(set string, uid uint32) bool {
	for _, item := range strings.Split(set, ",") {
		lo, hi, ok := strings.Cut(item, ":")
		if !ok {
			hi = lo
		}
		a, _ := strconv.ParseUint(lo, 10, 32)
		b, _ := strconv.ParseUint(hi, 10, 32)
		if a > b {
			a, b = b, a
		}
		if uint64(uid) >= a && uint64(uid) <= b {
			return true
		}
	}
	return false
}

// TestFixtureIMAPView rebuilds what each user saw over IMAP from the spool
// alone: flags (the owner's \Seen from the index, everybody else's from
// their seen database), sizes, dates, modseqs, GUIDs and annotations.
func TestFixtureIMAPView(t *testing.T) {
	s, dir := openFixture(t)
	ctx := context.Background()
	for _, user := range []string{"alice", "bob"} {
		var views []imapMailbox
		if err := json.Unmarshal([]byte(recorded(t, dir, "imap/"+user+".json")), &views); err != nil {
			t.Fatal(err)
		}
		seen, err := s.ReadSeen(user)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range views {
			name := v.Name
			switch {
			case name == "INBOX":
				name = "user." + user
			case strings.HasPrefix(name, "INBOX."):
				name = "user." + user + name[len("INBOX"):]
			}
			e, err := s.Lookup(name)
			if err != nil {
				t.Fatal(err)
			}
			m, err := s.OpenMailbox(ctx, e)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			if m.Index.UIDValidity != v.UIDValidity || m.Index.LastUID+1 != v.UIDNext ||
				m.Index.HighestModseq != v.HighestModSeq || m.Index.Exists != v.Exists {
				t.Errorf("%s as %s: index %+v, IMAP %+v", name, user, m.Index, v)
			}
			seenSet := ""
			for _, r := range seen {
				if r.UniqueID == e.UniqueID {
					seenSet = r.SeenUIDs
				}
			}
			meta := map[string]string{}
			for _, a := range m.Annotations() {
				switch a.UserID {
				case "":
					meta["/shared"+a.Entry] = string(a.Value)
				case user:
					meta["/private"+a.Entry] = string(a.Value)
				}
			}
			if len(meta) != len(v.Metadata) {
				t.Errorf("%s as %s: metadata %v, IMAP %v", name, user, meta, v.Metadata)
			}
			for k, val := range v.Metadata {
				if meta[k] != val {
					t.Errorf("%s as %s: metadata %s %q, IMAP %q", name, user, k, meta[k], val)
				}
			}
			i := 0
			err = m.Records(func(r Record) error {
				if r.Expunged() {
					return nil
				}
				if i >= len(v.Messages) {
					t.Errorf("%s: extra uid %d", name, r.UID)
					return nil
				}
				msg := v.Messages[i]
				i++
				var flags []string
				for _, f := range m.FlagNames(r) {
					if f != `\Seen` || m.InternalSeen(user) {
						flags = append(flags, f)
					}
				}
				if !m.InternalSeen(user) && seqSetHas(seenSet, r.UID) {
					flags = append(flags, `\Seen`)
				}
				want := slices.DeleteFunc(slices.Clone(msg.Flags), func(f string) bool { return f == `\Recent` })
				slices.Sort(flags)
				slices.Sort(want)
				annots := map[string]string{}
				for _, a := range m.RecordAnnotations(r.UID) {
					switch a.UserID {
					case "":
						annots[a.Entry+" value.shared"] = string(a.Value)
					case user:
						annots[a.Entry+" value.priv"] = string(a.Value)
					}
				}
				if r.UID != msg.UID || r.Size != msg.Size || r.Modseq != msg.ModSeq || r.GUID.String() != msg.GUID ||
					int64(r.InternalDate) != msg.InternalDate.Unix() || !slices.Equal(flags, want) ||
					len(annots) != len(msg.Annotations) {
					t.Errorf("%s as %s: uid %d flags %v annots %v: %+v\nIMAP %+v", name, user, r.UID, flags, annots, r, msg)
				}
				for k, val := range msg.Annotations {
					if annots[k] != val {
						t.Errorf("%s as %s uid %d: annotation %s %q, IMAP %q", name, user, r.UID, k, annots[k], val)
					}
				}
				return nil
			})
			if err != nil || i != len(v.Messages) {
				t.Errorf("%s as %s: %v; %d of %d messages", name, user, err, i, len(v.Messages))
			}
		}
	}
}
