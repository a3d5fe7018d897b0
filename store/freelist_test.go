package store

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// latestFreelist reads the freelist page id of the newest of the file's two
// meta pages (bbolt's layout: a 16-byte page header, then magic, version,
// page size, flags, the root bucket's page and sequence, the freelist's
// page, the high-water page and the transaction id; native byte order).
func latestFreelist(t *testing.T, path string) uint64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	size := int(binary.NativeEndian.Uint32(b[16+8:]))
	var freelist, txid uint64
	for _, off := range []int{0, size} {
		if id := binary.NativeEndian.Uint64(b[off+64:]); id >= txid {
			freelist, txid = binary.NativeEndian.Uint64(b[off+48:]), id
		}
	}
	return freelist
}

const noFreelist = ^uint64(0)

// TestFreelistWrittenAtClose: commits leave the freelist out (the bytes a
// commit writes are what a purchase waits for), Close writes it so that
// the next Open need not walk the file, and a file left without one, as a
// crash leaves it, opens with every free page found and nothing lost.
func TestFreelistWrittenAtClose(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "loyalty.db")
	db, err := Open(path, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	put := func(db *DB, from, to int) {
		t.Helper()
		for i := from; i < to; i += 50 {
			err := db.bolt.Update(func(tx *bolt.Tx) error {
				b, err := tx.CreateBucketIfNotExists([]byte("scratch"))
				if err != nil {
					return err
				}
				for j := i; j < i+50; j++ {
					// Values large enough that rewriting them frees pages.
					if err := b.Put(fmt.Appendf(nil, "k%06d", j%300), make([]byte, 900)); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	put(db, 0, 3000)
	if got := latestFreelist(t, path); got != noFreelist {
		t.Fatalf("after commits the meta names freelist page %d; want none written per commit", got)
	}
	// What a crash leaves: the file as of the last commit, no freelist.
	crashed, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if got := latestFreelist(t, path); got == noFreelist {
		t.Fatal("Close wrote no freelist: the next Open walks the whole file")
	}

	crashedPath := filepath.Join(dir, "crashed.db")
	if err := os.WriteFile(crashedPath, crashed, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, crashedPath} {
		db, err := Open(p, testOptions())
		if err != nil {
			t.Fatal(err)
		}
		if free := db.bolt.Stats().FreePageN; free == 0 {
			t.Errorf("%s: no free pages found after 3,000 rewrites", filepath.Base(p))
		}
		put(db, 3000, 4000)
		err = db.bolt.View(func(tx *bolt.Tx) error {
			for err := range tx.Check() {
				return err
			}
			if n := tx.Bucket([]byte("scratch")).Stats().KeyN; n != 300 {
				return fmt.Errorf("%d keys, want 300", n)
			}
			return nil
		})
		if err != nil {
			t.Errorf("%s: %v", filepath.Base(p), err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
