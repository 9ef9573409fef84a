package commands

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mbtool/mbtool/internal/cyruslab"
	"github.com/mbtool/mbtool/partition"
)

// TestRealCyrusRestoreKeptParents checks the one rule of the missing
// parents (usermap.MissingParents) in both modes on one real Cyrus with
// two partitions: a missing parent is created on the partition the child
// has in the target, with the same ACL and MODSEQs offline as with
// --server. alice has Projects.Plans (one message) on the default
// partition at the dump.
//
//   - Created: Projects.Plans alone restored with --partition second for
//     a new account: Projects is created on "second", as Cyrus's CREATE
//     puts the parents it makes on the child's partition (sync_server,
//     left to itself, puts it on the default partition).
//   - Kept: the account already has Projects.Plans on "second" (an
//     earlier run with --partition second) and lacks Projects (the earlier
//     run was killed before committing it); a rerun without --partition
//     keeps the child and creates Projects on "second", the kept child's
//     partition, not the dump's "default".
func TestRealCyrusRestoreKeptParents(t *testing.T) {
	lab, m, _ := aliceLabWith(t, cyruslab.Options{SecondPartition: true})
	second := cyruslab.SecondPartitionName
	file := dumpProjectsPlans(t, lab, m)
	admin := lab.IMAP(t, lab.Admin)
	s := openSpool(t, lab.Conf)
	lookup := func(name string) partition.Entry {
		t.Helper()
		e, ok, err := s.LookupAny(name)
		if err != nil || !ok || e.Deleted() || e.Intermediate() {
			t.Fatalf("%s: %v %+v %v; want a mailbox", name, ok, e, err)
		}
		return e
	}
	// parent describes the parent Projects of user U as the rule makes it,
	// the user's name replaced, for comparing the two modes.
	parent := func(user string) string {
		t.Helper()
		e := lookup("user." + user + ".Projects")
		acl := strings.ReplaceAll(partition.FormatACL(e.ACL), user, "USER")
		return fmt.Sprintf("partition %s, type %s, ACL %q, createdmodseq %d, foldermodseq %d, options %#x",
			e.Partition, e.Type, acl, e.CreatedModseq, e.FolderModseq, rawOptions(t, s, e))
	}
	// The OPTIONS Cyrus gives an intermediate it creates itself.
	if err := admin.Create("user.zed"); err != nil {
		t.Fatal(err)
	}
	if err := admin.Create("user.zed.P.Q"); err != nil {
		t.Fatal(err)
	}
	cyrusOptions := rawOptions(t, s, lookup("user.zed.P"))
	checkOptions := func(mode, user string) {
		t.Helper()
		if o := rawOptions(t, s, lookup("user."+user+".Projects")); o != cyrusOptions {
			t.Errorf("%s: the missing parent's OPTIONS are %#x; Cyrus gives an intermediate %#x", mode, o, cyrusOptions)
		}
	}
	restoreArgs := func(mode string) []string {
		if mode == "server" {
			return []string{"restore", "--server", lab.SyncAddr, "--auth-user", lab.Admin}
		}
		return []string{"restore", "-C", lab.Conf}
	}

	t.Run("created", func(t *testing.T) {
		var got []string
		for _, mode := range []string{"offline", "server"} {
			user := map[string]string{"offline": "dave", "server": "erin"}[mode]
			if err := admin.Create("user." + user); err != nil {
				t.Fatal(err)
			}
			args := append(restoreArgs(mode), "--partition", second, "--map-user", "alice="+user,
				"--mailbox", "user.alice.Projects.Plans", file)
			if code, out := m.run(args...); code != ExitOK {
				t.Fatalf("%s: exit %d\n%s", mode, code, out)
			}
			if p := lookup("user." + user + ".Projects.Plans").Partition; p != second {
				t.Fatalf("%s: the child is on %s, want %s", mode, p, second)
			}
			got = append(got, parent(user))
			checkOptions(mode, user)
			if p := lookup("user." + user + ".Projects").Partition; p != second {
				t.Errorf("%s: the missing parent Projects is on partition %s, want %s (the child's)", mode, p, second)
			}
		}
		if got[0] != got[1] {
			t.Errorf("the missing parent differs:\noffline:  %s\n--server: %s", got[0], got[1])
		}
	})

	t.Run("kept", func(t *testing.T) {
		var got []string
		for _, mode := range []string{"offline", "server"} {
			user := map[string]string{"offline": "frank", "server": "gina"}[mode]
			if err := admin.Create("user." + user); err != nil {
				t.Fatal(err)
			}
			if err := admin.SetACL("user."+user, "bob", "lr"); err != nil {
				t.Fatal(err)
			}
			mapped := []string{"--map-user", "alice=" + user, "--mailbox", "user.alice.Projects.Plans", file}
			first := append(append(restoreArgs("offline"), "--partition", second), mapped...)
			if code, out := m.run(first...); code != ExitOK {
				t.Fatalf("%s: first run: exit %d\n%s", mode, code, out)
			}
			// The first run killed before committing the parent: its entry gone.
			name := "user." + user + ".Projects"
			e := lookup(name)
			err := s.UpdateTwoskip(s.Config.MboxlistPath, false, partition.CyrusOwner(), func(tx *partition.TwoskipTx) error {
				tx.Delete(partition.NameKey(name))
				tx.Delete(partition.IDKey(e.UniqueID))
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			code, out := m.run(append(restoreArgs(mode), mapped...)...)
			if code != ExitOK || !strings.Contains(out, "1 already present") {
				t.Fatalf("%s: rerun: exit %d\n%s", mode, code, out)
			}
			got = append(got, parent(user))
			checkOptions(mode, user)
			if p := lookup(name).Partition; p != second {
				t.Errorf("%s: the missing parent of the kept child is on partition %s, want %s (the kept child's)", mode, p, second)
			}
			if out := lab.Tool(t, "reconstruct", "-n", name); strings.TrimSpace(out) != name {
				t.Errorf("%s: reconstruct -n %s: %s", mode, name, out)
			}
		}
		if !strings.Contains(got[0], "bob") {
			t.Errorf("offline: the parent has not its INBOX's ACL: %s", got[0])
		}
		if got[0] != got[1] {
			t.Errorf("the missing parent differs:\noffline:  %s\n--server: %s", got[0], got[1])
		}
	})
}

// rawOptions returns the OPTIONS a mailbox's cyrus.index stores (not
// those Cyrus reads: it adds POP3_NEW_UIDL to an empty mailbox's).
func rawOptions(t *testing.T, s *partition.Spool, e partition.Entry) uint32 {
	t.Helper()
	m, err := s.OpenMailbox(context.Background(), e)
	if err != nil {
		t.Fatalf("%s: %v", e.Name, err)
	}
	defer m.Close()
	return m.Index.RawOptions
}

// dumpProjectsPlans gives alice the folders Projects and Projects.Plans
// (one message in Plans) and dumps her; it returns the dump file.
func dumpProjectsPlans(t *testing.T, lab *cyruslab.Lab, m restoreModes) string {
	t.Helper()
	c := lab.IMAP(t, "alice")
	for _, name := range []string{"INBOX.Projects", "INBOX.Projects.Plans"} {
		if err := c.Create(name); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Append("INBOX.Projects.Plans", nil, time.Time{}, []byte("Subject: p\r\n\r\nx\r\n")); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "alice.dlist")
	if code, out := m.run("dump", "-C", lab.Conf, "--user", "alice", "-o", file); code != ExitOK {
		t.Fatalf("dump: exit %d\n%s", code, out)
	}
	return file
}

// TestRealCyrusRestoreChildBeforeParent: a dump that brings a child
// before its parent (`dump ... user.alice.Projects.Plans
// user.alice.Projects`) restored into an account that has neither. The
// dump's Projects is a mailbox of the dump, so it is no missing parent of
// Plans: it is restored as dumped, with its message, in both modes (the
// one rule, usermap.MissingParents, counts the dump's mailboxes as
// present). --server used to create an empty Projects before Plans, and
// sync_server then refused the dump's own (another uniqueid). Also with
// --partition second, where --server first sends Plans empty to learn
// whether the server has the partition.
func TestRealCyrusRestoreChildBeforeParent(t *testing.T) {
	lab, m, _ := aliceLabWith(t, cyruslab.Options{SecondPartition: true})
	admin := lab.IMAP(t, lab.Admin)
	// Projects on the default partition, Plans on the second: a parent
	// made for Plans would be on the second.
	for _, f := range []struct{ name, part string }{{"Projects", "default"}, {"Projects.Plans", cyruslab.SecondPartitionName}} {
		if _, err := admin.Command("CREATE", cyruslab.Quote("user.alice."+f.name), f.part); err != nil {
			t.Fatal(err)
		}
	}
	c := lab.IMAP(t, "alice")
	for _, name := range []string{"INBOX.Projects", "INBOX.Projects.Plans"} {
		if _, err := c.Append(name, nil, time.Time{}, []byte("Subject: "+name+"\r\n\r\nx\r\n")); err != nil {
			t.Fatal(err)
		}
	}
	file := filepath.Join(t.TempDir(), "alice.dlist")
	if code, out := m.run("dump", "-C", lab.Conf, "-o", file, "user.alice.Projects.Plans", "user.alice.Projects"); code != ExitOK {
		t.Fatalf("dump: exit %d\n%s", code, out)
	}
	s := openSpool(t, lab.Conf)
	n := 0
	for _, part := range []string{"", cyruslab.SecondPartitionName} {
		for _, mode := range []string{"offline", "server"} {
			n++
			user := fmt.Sprintf("user%d", n)
			if err := admin.Create("user." + user); err != nil {
				t.Fatal(err)
			}
			args := []string{"--map-user", "alice=" + user, file}
			if part != "" {
				args = append([]string{"--partition", part}, args...)
			}
			code, out := m.in(mode, args...)
			if code != ExitOK || !strings.Contains(out, "2 created") {
				t.Errorf("%s %s: exit %d, want %d and 2 created\n%s", mode, part, code, ExitOK, out)
			}
			for _, f := range []string{"Projects", "Projects.Plans"} {
				name := "user." + user + "." + f
				if out := lab.Tool(t, "mbexamine", name); !strings.Contains(out, "Number of Messages: 1 ") {
					t.Errorf("%s %s: %s: want the dump's one message; mbexamine:\n%s", mode, part, name, out)
				}
				e, ok, err := s.LookupAny(name)
				if err != nil || !ok || e.Deleted() || e.Intermediate() {
					t.Errorf("%s %s: %s: %v %+v %v; want a mailbox", mode, part, name, ok, e, err)
				} else if want := map[string]string{"": map[string]string{"Projects": "default", "Projects.Plans": cyruslab.SecondPartitionName}[f]}[part]; e.Partition != max(want, part) {
					t.Errorf("%s %s: %s is on partition %s, want %s", mode, part, name, e.Partition, max(want, part))
				}
			}
		}
	}
}
