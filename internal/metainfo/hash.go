package metainfo

import (
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// ErrChanged is wrapped by the error Create returns when a file changed
// (size, modification time or identity) between listing and hashing.
var ErrChanged = errors.New("changed while hashed")

// A Progress callback learns how many bytes of total have been hashed. It
// is called from one goroutine, about ten times a second and once at the
// end, and must return quickly.
type Progress func(done, total int64)

// hashJob is the work of hashing a torrent's data once for v1 and v2:
// every piece is read into a worker's buffer, SHA-1 hashed whole (v1) and
// SHA-256 hashed in 16 KiB blocks reduced to the piece's subtree (v2).
// Pieces are handed out in order but each result has a fixed slot, so the
// output does not depend on the number of workers.
type hashJob struct {
	files    []File   // in data order, pads included (aligned when v2)
	disk     []string // where each file is read from; "" for pads
	listed   []os.FileInfo
	pieceLen int64
	v1, v2   bool
	threads  int
	progress Progress
	// tolerant (verify) marks a piece that cannot be read as bad and goes
	// on; otherwise the first error stops the job.
	tolerant bool
}

// hashResult holds the hashes of every piece.
type hashResult struct {
	v1 []byte // 20 bytes per piece
	// v2 is 32 bytes per piece: the piece's subtree root, or for a file of
	// at most one piece, the file's pieces root.
	v2      []byte
	readErr []error // tolerant: per file, the first error reading it
	readOK  []bool  // tolerant: per piece, false if it could not be read
}

func (j *hashJob) total() int64 {
	if len(j.files) == 0 {
		return 0
	}
	last := j.files[len(j.files)-1]
	return last.Offset + last.Length
}

func (j *hashJob) numPieces() int {
	return int((j.total() + j.pieceLen - 1) / j.pieceLen)
}

func (j *hashJob) run(ctx context.Context) (*hashResult, error) {
	n := j.numPieces()
	res := &hashResult{}
	if j.v1 {
		res.v1 = make([]byte, 20*n)
	}
	if j.v2 {
		res.v2 = make([]byte, 32*n)
	}
	if j.tolerant {
		res.readErr = make([]error, len(j.files))
		res.readOK = make([]bool, n)
	}
	threads := j.threads
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	threads = max(1, min(threads, n))

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		next, done atomic.Int64
		errOnce    sync.Once
		firstErr   error
		errMu      sync.Mutex // guards res.readErr
		wg         sync.WaitGroup
	)
	fail := func(err error) {
		errOnce.Do(func() { firstErr = err; cancel() })
	}
	for range threads {
		w := newWorker(j)
		wg.Go(func() {
			// A file cut short under its mapping faults; the worker turns
			// that into an error (see piece).
			defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
			defer w.close()
			for ctx.Err() == nil {
				p := int(next.Add(1) - 1)
				if p >= n {
					return
				}
				fi, err := w.piece(p, res)
				if err != nil {
					if !j.tolerant {
						fail(err)
						return
					}
					errMu.Lock()
					if res.readErr[fi] == nil {
						res.readErr[fi] = err
					}
					errMu.Unlock()
				} else if j.tolerant {
					res.readOK[p] = true
				}
				done.Add(min(j.pieceLen, j.total()-int64(p)*j.pieceLen))
			}
		})
	}
	stopProgress := j.reportProgress(&done)
	wg.Wait()
	stopProgress(firstErr == nil && ctx.Err() == nil)
	if firstErr != nil {
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return res, nil
}

// reportProgress calls j.progress every 100 ms until the returned function
// is called, which reports the end if the job finished.
func (j *hashJob) reportProgress(done *atomic.Int64) func(finished bool) {
	if j.progress == nil {
		return func(bool) {}
	}
	total := j.total()
	stop := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				j.progress(done.Load(), total)
			}
		}
	}()
	return func(finished bool) {
		close(stop)
		<-exited
		if finished {
			j.progress(total, total)
		}
	}
}

// A worker hashes one piece at a time with buffers and a hasher it keeps.
type worker struct {
	job   *hashJob
	buf   []byte // a piece read with pread
	zeros []byte // a piece of pad
	nodes []byte // the piece's block hashes, reduced in place
	sha1  hash.Hash
	sum   [sha1.Size]byte
	cur   int // index of the open file, or -1
	f     *os.File
	m     []byte // the open file mapped, or nil to read it with pread
}

func newWorker(j *hashJob) *worker {
	w := &worker{job: j, cur: -1, buf: make([]byte, j.pieceLen), sha1: sha1.New()}
	if j.v2 {
		w.nodes = make([]byte, 32*(j.pieceLen/BlockSize))
	}
	return w
}

func (w *worker) close() {
	if w.m != nil {
		unmap(w.m)
		w.m = nil
	}
	if w.f != nil {
		w.f.Close()
		w.f = nil
	}
	w.cur = -1
}

// open makes file i the worker's open file, checking that it is still the
// file that was listed, and maps it if it is large enough to be worth it.
func (w *worker) open(i int) error {
	if w.cur == i {
		return nil
	}
	w.close()
	j := w.job
	f, err := os.Open(j.disk[i])
	if err != nil {
		return err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	if j.listed != nil {
		was := j.listed[i]
		if !os.SameFile(st, was) || st.Size() != was.Size() || !st.ModTime().Equal(was.ModTime()) {
			f.Close()
			return fmt.Errorf("%s: %w (it was replaced or written to after it was listed)", j.disk[i], ErrChanged)
		}
	}
	w.f, w.cur = f, i
	// Hashing straight from the page cache saves copying every byte. Only
	// a file whose size matches is mapped; a short one is read, so the
	// short read is reported.
	if size := j.files[i].Length; size >= mmapMinBytes && st.Size() == size {
		w.m = mapFile(f, size) // nil if the system will not: then pread
	}
	return nil
}

// mmapMinBytes is the smallest file worth mapping rather than reading.
const mmapMinBytes = 1 << 20

// piece hashes piece p into res. On error it returns the index of the
// file that could not be read.
func (w *worker) piece(p int, res *hashResult) (fi int, err error) {
	j := w.job
	start := int64(p) * j.pieceLen
	end := min(start+j.pieceLen, j.total())
	// The first file that ends after start holds the piece's first byte;
	// empty files before it are passed over.
	first := sort.Search(len(j.files), func(i int) bool {
		f := &j.files[i]
		return f.Offset+f.Length > start
	})
	defer func() {
		// A fault inside a mapping means the file shrank under it.
		if r := recover(); r != nil {
			if _, ok := r.(interface{ Addr() uintptr }); !ok || w.m == nil {
				panic(r)
			}
			fi, err = w.cur, fmt.Errorf("%s: %w: it shrank while it was read", j.disk[w.cur], ErrChanged)
			w.close()
		}
	}()
	if j.v1 {
		w.sha1.Reset()
	}
	var data []byte // the piece's bytes of its first file, for v2
	for i, pos := first, start; pos < end; i++ {
		f := &j.files[i]
		if f.Length == 0 {
			continue
		}
		segEnd := min(f.Offset+f.Length, end)
		var seg []byte
		if f.Pad {
			if !j.v1 {
				break // v2 hashes only the file's own bytes
			}
			if w.zeros == nil {
				w.zeros = make([]byte, j.pieceLen)
			}
			seg = w.zeros[:segEnd-pos]
		} else if seg, err = w.read(i, pos-f.Offset, pos-start, segEnd-pos); err != nil {
			return i, err
		}
		switch {
		case j.v2 && i == first:
			data = seg // hashed below, block by block, for v1 too
		case j.v2:
			// A pad after the file: v1 hashes it after the data, below.
		case j.v1:
			w.sha1.Write(seg)
		}
		pos = segEnd
	}
	if j.v2 {
		f := &j.files[first]
		k := 0
		for b := 0; b < len(data); b += BlockSize {
			block := data[b:min(b+BlockSize, len(data))]
			if j.v1 { // while the block is in the L1 cache
				w.sha1.Write(block)
			}
			h := sha256.Sum256(block)
			copy(w.nodes[32*k:], h[:])
			k++
		}
		width := int(j.pieceLen / BlockSize)
		if f.Length <= j.pieceLen { // the file's only piece: its tree is as wide as its blocks need
			width = nextPow2(k)
		}
		root := merkleRoot(w.nodes, k, width, hash32{})
		copy(res.v2[32*p:], root[:])
		if rest := end - start - int64(len(data)); j.v1 && rest > 0 {
			w.sha1.Write(w.zeros[:rest]) // the pad after the file
		}
	}
	if j.v1 {
		copy(res.v1[20*p:], w.sha1.Sum(w.sum[:0]))
	}
	return 0, nil
}

// read returns n bytes of file i at offset off: from its mapping, or read
// into the piece buffer at bufOff.
func (w *worker) read(i int, off, bufOff, n int64) ([]byte, error) {
	if err := w.open(i); err != nil {
		return nil, err
	}
	if w.m != nil {
		return w.m[off : off+n], nil
	}
	seg := w.buf[bufOff : bufOff+n]
	got, err := w.f.ReadAt(seg, off)
	if got == len(seg) {
		return seg, nil
	}
	if errors.Is(err, io.EOF) {
		if w.job.listed == nil {
			return nil, fmt.Errorf("%s: ends at %d bytes, want %d", w.job.disk[i], off+int64(got), w.job.files[i].Length)
		}
		return nil, fmt.Errorf("%s: %w: it ends at %d bytes, want %d", w.job.disk[i], ErrChanged, off+int64(got), w.job.files[i].Length)
	}
	return nil, fmt.Errorf("read %s: %w", w.job.disk[i], err)
}
