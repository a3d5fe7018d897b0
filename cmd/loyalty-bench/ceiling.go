package main

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
)

// ceilingRecord is the size of one raw append, about a ledger entry's.
const ceilingRecord = 200

// ceilingResult is what bbolt alone achieves at one concurrency.
type ceilingResult struct {
	Concurrency    int     `json:"concurrency"`
	AppendsPerSec  float64 `json:"appends_per_sec"`
	CommitsPerSec  float64 `json:"commits_per_sec"`
	AppendsPerTx   float64 `json:"appends_per_commit"`
	DurationSecond float64 `json:"duration_seconds"`
}

// rawCeiling measures durable db.Batch appends of 200-byte records from
// conc goroutines on a fresh bbolt file in dir, with the server's batch
// settings: what the disk and bbolt allow before the engine does anything.
func rawCeiling(dir string, conc int, d time.Duration, delay time.Duration, size int) (ceilingResult, error) {
	path := filepath.Join(dir, fmt.Sprintf("ceiling-%d.db", conc))
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, InitialMmapSize: 1 << 30})
	if err != nil {
		return ceilingResult{}, err
	}
	defer db.Close()
	db.MaxBatchDelay, db.MaxBatchSize = delay, size
	name := []byte("appends")
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(name)
		return err
	}); err != nil {
		return ceilingResult{}, err
	}
	txBefore := txID(db)
	var n atomic.Int64
	var failed atomic.Pointer[error]
	stop := make(chan struct{})
	var wg sync.WaitGroup
	began := time.Now()
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			val := make([]byte, ceilingRecord)
			for {
				select {
				case <-stop:
					return
				default:
				}
				err := db.Batch(func(tx *bolt.Tx) error {
					b := tx.Bucket(name)
					seq, err := b.NextSequence()
					if err != nil {
						return err
					}
					binary.BigEndian.PutUint64(val, seq)
					return b.Put(binary.BigEndian.AppendUint64(nil, seq), val)
				})
				if err != nil {
					failed.CompareAndSwap(nil, &err)
					return
				}
				n.Add(1)
			}
		}()
	}
	time.Sleep(d)
	close(stop)
	wg.Wait()
	elapsed := time.Since(began)
	if e := failed.Load(); e != nil {
		return ceilingResult{}, *e
	}
	commits := float64(txID(db) - txBefore)
	r := ceilingResult{
		Concurrency: conc, AppendsPerSec: float64(n.Load()) / elapsed.Seconds(),
		CommitsPerSec: commits / elapsed.Seconds(), DurationSecond: elapsed.Seconds(),
	}
	if commits > 0 {
		r.AppendsPerTx = float64(n.Load()) / commits
	}
	return r, nil
}

func txID(db *bolt.DB) int {
	var id int
	_ = db.View(func(tx *bolt.Tx) error { id = tx.ID(); return nil })
	return id
}

// diskResult is what the disk does with the writes bbolt makes: a commit
// is its dirty pages written where the freelist puts them, then fdatasync.
type diskResult struct {
	// FsyncMs is one 4 KiB page written and synced.
	FsyncMs float64 `json:"fsync_ms"`
	// PagesPerSec is 4 KiB pages at random offsets written and synced 256
	// at a time: the rate a write-heavy bbolt commit can reach.
	PagesPerSec float64 `json:"random_pages_per_sec"`
}

// diskPages measures the disk under dir for about d.
func diskPages(dir string, d time.Duration) (diskResult, error) {
	const fileSize = 256 << 20
	f, err := os.CreateTemp(dir, "pages-*")
	if err != nil {
		return diskResult{}, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	// Write the file out first, so the test rewrites blocks as bbolt does
	// rather than allocating them.
	chunk := make([]byte, 1<<20)
	for off := int64(0); off < fileSize; off += int64(len(chunk)) {
		if _, err := f.WriteAt(chunk, off); err != nil {
			return diskResult{}, err
		}
	}
	if err := f.Sync(); err != nil {
		return diskResult{}, err
	}
	page := make([]byte, 4096)
	rnd := rand.New(rand.NewPCG(1, 2))
	commit := func(pages int) error {
		for range pages {
			if _, err := f.WriteAt(page, rnd.Int64N(fileSize/4096)*4096); err != nil {
				return err
			}
		}
		return syscall.Fdatasync(int(f.Fd()))
	}
	var r diskResult
	for i, pages := range []int{1, 256} {
		var n int
		var took time.Duration
		for began := time.Now(); time.Since(began) < d/2 || n == 0; n++ {
			t := time.Now()
			if err := commit(pages); err != nil {
				return r, err
			}
			took += time.Since(t)
		}
		if i == 0 {
			r.FsyncMs = ms(took / time.Duration(n))
		} else {
			r.PagesPerSec = float64(n*pages) / took.Seconds()
		}
	}
	return r, nil
}
