// Command imapcompare diffs what two running Cyrus labs serve (see
// package imapcompare), section by section: the IMAP view of the admin
// and of each user named, and mbexamine and reconstruct -n of every
// mailbox.
//
// Usage:
//
//	imapcompare [-user USER]... [-no-tools] LAB_A LAB_B
//
// LAB_A and LAB_B are lab directories (cyruslab start DIR). It must run
// as root, as cyruslab does. Exit status: 0 the same, 1 they differ (each
// differing section is printed), 2 usage or failure.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/mbtool/mbtool/internal/cyruslab"
	"github.com/mbtool/mbtool/internal/imapcompare"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

type users []string

func (u *users) String() string     { return strings.Join(*u, ",") }
func (u *users) Set(s string) error { *u = append(*u, s); return nil }

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("imapcompare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var opts imapcompare.Options
	fs.Var((*users)(&opts.Users), "user", "also compare this user's view (repeatable)")
	fs.BoolVar(&opts.NoTools, "no-tools", false, "leave out mbexamine and reconstruct -n")
	if err := fs.Parse(args); err != nil || fs.NArg() != 2 {
		fmt.Fprintln(stderr, "usage: imapcompare [-user USER]... [-no-tools] LAB_A LAB_B")
		return 2
	}
	var snaps [2]imapcompare.Snapshot
	for i, dir := range fs.Args() {
		lab, err := cyruslab.Open(dir)
		if err != nil {
			fmt.Fprintln(stderr, "imapcompare:", err)
			return 2
		}
		if snaps[i], err = imapcompare.Take(lab, opts); err != nil {
			fmt.Fprintln(stderr, err)
			return 2
		}
	}
	diffs := imapcompare.Diff(snaps[0], snaps[1])
	for _, d := range diffs {
		fmt.Fprintln(stdout, d)
	}
	if len(diffs) > 0 {
		fmt.Fprintf(stdout, "%d of %d sections differ\n", len(diffs), len(snaps[0]))
		return 1
	}
	fmt.Fprintf(stdout, "the same: %d sections\n", len(snaps[0]))
	return 0
}
