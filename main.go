// Command mbtool dumps, restores and verifies Cyrus IMAP mailboxes as Cyrus
// dlist (replication protocol) streams. See README.md.
package main

import (
	"os"

	"github.com/mbtool/mbtool/commands"
)

func main() {
	os.Exit(commands.Main(os.Args, os.Stdin, os.Stdout, os.Stderr))
}
