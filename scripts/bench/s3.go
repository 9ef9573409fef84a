package main

// The object-store pairs (-s3): the backup repository on a SeaweedFS
// store on loopback (internal/s3lab) next to the same repository in a
// directory, on the generated partition. Issue 17's bar: dump and restore
// through S3 at no less than 0.7x of the directory, peak RSS under 64 MiB
// (128 MiB with parallel uploads).

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mbtool/mbtool/fixtures/gen"
	"github.com/mbtool/mbtool/internal/benchstat"
	"github.com/mbtool/mbtool/internal/s3lab"
	"github.com/mbtool/mbtool/partition"
	"github.com/mbtool/mbtool/s3store"
)

const sectionS3 = "bench s3"

// s3Pairs measures, in alternating rounds: dump --all into a fresh
// repository in a directory and under a fresh s3:// prefix (with one part
// in flight and with the default four), and restore of every user from
// each into a fresh partition, then sync.
func s3Pairs(bin string, c config, p *partitionInfo) (string, error) {
	started := time.Now()
	work := c.dir
	labDir := filepath.Join(work, "s3lab")
	os.RemoveAll(labDir)
	if err := os.MkdirAll(labDir, 0o700); err != nil {
		return "", err
	}
	defer os.RemoveAll(labDir)
	store, err := s3lab.LaunchMini(labDir, s3lab.Options{Bucket: "bench"})
	if err != nil {
		return "", err
	}
	defer store.Stop()
	for _, kv := range store.Env() {
		k, v, _ := strings.Cut(kv, "=")
		os.Setenv(k, v)
	}
	cfg, err := partition.LoadConfig(p.conf)
	if err != nil {
		return "", err
	}
	spool, err := partition.Open(cfg)
	if err != nil {
		return "", err
	}
	users, err := spool.Users()
	if err != nil {
		return "", err
	}
	dirRepo := filepath.Join(work, "repo-dir")
	defer os.RemoveAll(dirRepo)
	client, err := s3store.New(context.Background(), s3store.Options{})
	if err != nil {
		return "", err
	}
	// Each dump writes a new repository under "dump/"; what the one
	// before wrote there is deleted first (the store reclaims the space
	// when it next compacts its volumes: the work directory needs room
	// for several copies of the repository).
	fresh := func(kind string) string {
		err := client.List(context.Background(), store.Bucket, kind+"/", func(e s3store.Entry) error {
			return client.Delete(context.Background(), store.Bucket, e.Key)
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench: emptying the repository:", err)
		}
		return store.URL(kind)
	}
	dumpDir := func() (string, error) {
		os.RemoveAll(dirRepo)
		return fmt.Sprintf("%s dump -C %s --all -q --repo %s", q(bin), q(p.conf), q(dirRepo)), nil
	}
	dumpS3 := func(parallel int) func() (string, error) {
		return func() (string, error) {
			return fmt.Sprintf("%s dump -C %s --all -q --s3-parallel %d --repo %s", q(bin), q(p.conf), parallel, q(fresh("dump"))), nil
		}
	}
	// The repositories restored from, made once.
	s3Repo := store.URL("restore-from")
	if err := sh(work, fmt.Sprintf("%s dump -C %s --all -q --repo %s && %s dump -C %s --all -q --repo %s",
		q(bin), q(p.conf), q(dirRepo), q(bin), q(p.conf), q(s3Repo))); err != nil {
		return "", err
	}
	target := filepath.Join(work, "s3-target")
	defer os.RemoveAll(target)
	restoreFrom := func(repo string) func() (string, error) {
		return func() (string, error) {
			os.RemoveAll(target)
			conf, err := gen.EmptyPartition(target)
			if err != nil {
				return "", err
			}
			var b strings.Builder
			for _, u := range users {
				fmt.Fprintf(&b, "%s restore -C %s -q --repo %s --user %s && ", q(bin), q(conf), q(repo), q(u))
			}
			return b.String() + "sync", nil
		}
	}
	m := func(name string) *measurement { return &measurement{name: name} }
	dDir, dS3, dS3one := m("dump --repo DIR"), m("dump --repo s3://"), m("dump --repo s3:// --s3-parallel 1")
	rDir, rS3 := m("restore --repo DIR + sync"), m("restore --repo s3:// + sync")
	// The dumps from the directory repository first: it is remade by
	// each dumpDir, and the restores need it whole.
	restoreGroup := group{cmds: []command{{rDir, restoreFrom(dirRepo)}, {rS3, restoreFrom(s3Repo)}}}
	if err := runGroups(work, []group{restoreGroup}, c.pairs); err != nil {
		return "", err
	}
	dumpGroups := []group{
		{cmds: []command{{dDir, dumpDir}, {dS3, dumpS3(4)}}},
		{cmds: []command{{dDir, dumpDir}, {dS3one, dumpS3(1)}}},
	}
	if err := runGroups(work, dumpGroups, c.pairs); err != nil {
		return "", err
	}
	pairs := []pair{
		{"dump --repo", dS3, dDir, p.treeBytes, "files under config/ and spool/"},
		{"dump --repo, one part in flight", dS3one, dDir, p.treeBytes, "files under config/ and spool/"},
		{"restore --repo", rS3, rDir, p.treeBytes, "files under config/ and spool/"},
	}
	var b strings.Builder
	b.WriteString("## The repository on object storage\n\n")
	fmt.Fprintf(&b, "Measured by `%s` on %s, %s.\n\n", c.args, benchstat.Machine(), started.UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&b, "The partition of the pairs above (%d message files, %.2f GB, %d users). The store is SeaweedFS `weed mini` "+
		"on loopback (internal/s3lab), with credentials; each dump writes a new repository (a fresh directory, a fresh prefix). "+
		"Each pair ran in %d alternating rounds; times in seconds, median (min–max); the ratio is the directory's time over the "+
		"object store's in the same round (the bar is 0.7); peak RSS the largest of the runs.\n\n", p.messages, float64(p.bytes)/1e9, p.users, c.pairs)
	b.WriteString("| command | s3:// seconds | DIR seconds | ratio | peak RSS MiB s3:// / DIR |\n|---|---|---|---|---|\n")
	for _, x := range pairs {
		fmt.Fprintf(&b, "| `%s` | %s | %s | **%s** | %d / %d |\n", x.what, x.mbtool.time().Format("%.2f"), x.baseline.time().Format("%.2f"),
			x.ratio().Format("%.2f"), x.mbtool.maxRSSMiB(), x.baseline.maxRSSMiB())
	}
	isDir := func(m *measurement) bool { return strings.Contains(m.name, "DIR") }
	for _, w := range spreadWarnings(c.pairs, []*measurement{dDir, dS3, dS3one, rDir, rS3}, isDir) {
		b.WriteString("\n**Warning:** " + w + "\n")
	}
	return b.String(), nil
}
