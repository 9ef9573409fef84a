package dlist_test

import (
	"fmt"
	"io"
	"strings"

	"github.com/mbtool/mbtool/dlist"
)

// Reading an APPLY MAILBOX record by record, and a message's bytes as they
// stream past.
func ExampleReader() {
	in := "APPLY MESSAGE (%{default 0a0a9f2a6772942557ab5355d76af442f8f65e01 13}\r\nHello, World!)\r\n" +
		"APPLY MAILBOX %(MBOXNAME user.fred RECORD (%(UID 1 FLAGS (\\Seen)) %(UID 2 FLAGS ())))\r\n"
	r := dlist.NewReader(strings.NewReader(in))
	for {
		t, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			fmt.Println(err)
			return
		}
		switch {
		case t.Kind == dlist.File:
			n, _ := io.Copy(io.Discard, r.Body())
			fmt.Printf("file %s: %d bytes\n", t.File.GUID, n)
		case t.IsKey && string(t.Bytes) == "RECORD":
			r.Next() // the list's "("
			for {
				rec, err := r.ReadValue()
				if err != nil {
					fmt.Println(err)
					return
				}
				if rec.Kind == dlist.End {
					break
				}
				uid, _ := rec.Get("UID").Num32()
				fmt.Printf("record %d: %d flags\n", uid, len(rec.Get("FLAGS").Children))
			}
		}
	}
	// Output:
	// file 0a0a9f2a6772942557ab5355d76af442f8f65e01: 13 bytes
	// record 1: 1 flags
	// record 2: 0 flags
}

func ExampleWriter() {
	var out strings.Builder
	w := dlist.NewWriter(&out)
	w.BeginLine("APPLY", "SEEN")
	w.BeginKVList()
	w.Key("USERID")
	w.Atom("fred")
	w.Key("LASTREAD")
	w.Num(1795877655)
	w.Key("SEENUIDS")
	w.Atom("1:3")
	w.EndList()
	w.EndLine()
	sub := dlist.NewKVList().
		Add("USERID", dlist.NewAtom("fred")).
		Add("MBOXNAME", dlist.NewAtom("user.fred.Old Stuff"))
	sub.Key = "SUB"
	w.WriteLine(&dlist.Line{Verb: "APPLY", Value: sub})
	if err := w.Flush(); err != nil {
		fmt.Println(err)
	}
	for _, line := range strings.SplitAfter(out.String(), "\n") {
		if line != "" {
			fmt.Printf("%q\n", line)
		}
	}
	// Output:
	// "APPLY SEEN %(USERID fred LASTREAD 1795877655 SEENUIDS 1:3)\r\n"
	// "APPLY SUB %(USERID fred MBOXNAME \"user.fred.Old Stuff\")\r\n"
}
