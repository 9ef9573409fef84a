package cyrusdb_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"

	"github.com/mbtool/mbtool/cyrusdb"
)

// Write a seen database and read it back under the shared lock.
func Example() {
	dir, _ := os.MkdirTemp("", "cyrusdb")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "seen.db")

	recs := [][2][]byte{
		{[]byte("290v19764h5ax1lg17aclxy2"), []byte("1 1795877655 3 1795877655 1,3")},
		{[]byte("6czsctw5vujqggbj06eud7mh"), []byte("1 0 0 0 ")},
	}
	f, err := os.Create(path)
	if err != nil {
		fmt.Println(err)
		return
	}
	i := 0
	err = cyrusdb.WriteTwoskip(f, 1, func() ([]byte, []byte, bool) {
		if i == len(recs) {
			return nil, nil, false
		}
		i++
		return recs[i-1][0], recs[i-1][1], true
	})
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		fmt.Println(err)
		return
	}

	db, err := cyrusdb.OpenTwoskip(path)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer db.Close()
	db.ForEach(nil, func(key, value []byte) error {
		fmt.Printf("%s: %q\n", key, value)
		return nil
	})
	v, ok, err := db.Get([]byte("6czsctw5vujqggbj06eud7mh"))
	fmt.Printf("%q %v %v\n", v, ok, err)
	// Output:
	// 290v19764h5ax1lg17aclxy2: "1 1795877655 3 1795877655 1,3"
	// 6czsctw5vujqggbj06eud7mh: "1 0 0 0 "
	// "1 0 0 0 " true <nil>
}

// Flat files sort '.' below every other byte.
func ExampleWriteFlat() {
	var buf bytes.Buffer
	cyrusdb.WriteFlat(&buf, [][2][]byte{
		{[]byte("NINBOX\x1fa-b"), nil},
		{[]byte("NINBOX\x1fa.b"), nil},
		{[]byte("NINBOX\x1fa b"), nil},
	})
	cyrusdb.ReadFlat("sub.db", &buf, func(key, value []byte) error {
		fmt.Printf("%q\n", key)
		return nil
	})
	// Output:
	// "NINBOX\x1fa.b"
	// "NINBOX\x1fa b"
	// "NINBOX\x1fa-b"
}
