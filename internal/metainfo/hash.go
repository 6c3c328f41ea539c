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
// every piece is read in chunks into a worker's buffer, each chunk SHA-1
// hashed (v1) and SHA-256 hashed in 16 KiB blocks that are reduced to the
// piece's subtree (v2). For a v1-only torrent on a CPU with the SHA
// extensions a worker takes two pieces at a time and hashes them side by
// side (sha1x2.go). Pieces are handed out in order but each result has a
// fixed slot, so the output does not depend on the number of workers.
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
			defer w.close()
			step := 1
			if w.pairBuf != nil {
				step = 2 // v1 pieces two at a time, see piecePair
			}
			for ctx.Err() == nil {
				first := int(next.Add(int64(step)) - int64(step))
				if first >= n {
					return
				}
				if step == 2 && w.piecePair(first, res) {
					if j.tolerant {
						res.readOK[first], res.readOK[first+1] = true, true
					}
					done.Add(2 * j.pieceLen)
					continue
				}
				for p := first; p < min(first+step, n); p++ {
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

// A worker hashes one piece at a time with a buffer and hashers it keeps.
type worker struct {
	job   *hashJob
	buf   []byte // a chunk read with pread
	zeros []byte // a piece of pad
	nodes []byte // the piece's block hashes, reduced in place
	sha1  hash.Hash
	sum   [sha1.Size]byte
	cur   int // index of the open file, or -1
	f     *os.File
	// pairBuf is the second piece's chunk when v1 pieces are hashed two
	// at a time (v1 only, on a CPU with the SHA extensions); else nil.
	pairBuf []byte
}

// readBytes is the most a worker reads at once: a multiple of BlockSize,
// small enough that the chunk is still in the core's cache when it is
// hashed. (Mapping the files instead saves the copy but costs more: every
// page mapped is unmapped again, a page at a time.)
const readBytes = 128 << 10

// useSHA1x2 says whether v1 pieces are hashed two at a time; tests turn it
// off to check the other way.
var useSHA1x2 = haveSHA1x2

func newWorker(j *hashJob) *worker {
	w := &worker{job: j, cur: -1, buf: make([]byte, min(j.pieceLen, readBytes)), sha1: sha1.New()}
	if j.v2 {
		w.nodes = make([]byte, 32*(j.pieceLen/BlockSize))
	} else if useSHA1x2 {
		w.pairBuf = make([]byte, len(w.buf))
	}
	return w
}

func (w *worker) close() {
	if w.f != nil {
		w.f.Close()
		w.f = nil
	}
	w.cur = -1
}

// open makes file i the worker's open file, checking that it is still the
// file that was listed.
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
	if j.listed != nil {
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return err
		}
		was := j.listed[i]
		if !os.SameFile(st, was) || st.Size() != was.Size() || !st.ModTime().Equal(was.ModTime()) {
			f.Close()
			return fmt.Errorf("%s: %w (it was replaced or written to after it was listed)", j.disk[i], ErrChanged)
		}
	}
	w.f, w.cur = f, i
	return nil
}

// piece hashes piece p into res. On error it returns the index of the
// file that could not be read.
func (w *worker) piece(p int, res *hashResult) (int, error) {
	j := w.job
	start := int64(p) * j.pieceLen
	end := min(start+j.pieceLen, j.total())
	// The first file that ends after start holds the piece's first byte;
	// empty files before it are passed over.
	first := sort.Search(len(j.files), func(i int) bool {
		f := &j.files[i]
		return f.Offset+f.Length > start
	})
	if j.v1 {
		w.sha1.Reset()
	}
	k := 0 // v2: blocks hashed into w.nodes
	for i, pos := first, start; pos < end; i++ {
		f := &j.files[i]
		if f.Length == 0 {
			continue
		}
		segEnd := min(f.Offset+f.Length, end)
		if f.Pad {
			if !j.v1 {
				break // v2 hashes only the file's own bytes
			}
			if w.zeros == nil {
				w.zeros = make([]byte, j.pieceLen)
			}
			w.sha1.Write(w.zeros[:segEnd-pos])
			pos = segEnd
			continue
		}
		// In v2 every file starts a piece, so a piece has the bytes of
		// one file, and each chunk starts a block.
		for pos < segEnd {
			chunk := w.buf[:min(segEnd-pos, int64(len(w.buf)))]
			if err := w.readAt(chunk, i, pos-f.Offset); err != nil {
				return i, err
			}
			if !j.v2 {
				w.sha1.Write(chunk)
			}
			for b := 0; j.v2 && b < len(chunk); b += BlockSize {
				block := chunk[b:min(b+BlockSize, len(chunk))]
				if j.v1 { // while the block is in the L1 cache
					w.sha1.Write(block)
				}
				h := sha256.Sum256(block)
				copy(w.nodes[32*k:], h[:])
				k++
			}
			pos += int64(len(chunk))
		}
	}
	if j.v2 {
		width := int(j.pieceLen / BlockSize)
		if j.files[first].Length <= j.pieceLen { // the file's only piece: its tree is as wide as its blocks need
			width = nextPow2(k)
		}
		root := merkleRoot(w.nodes, k, width, hash32{})
		copy(res.v2[32*p:], root[:])
	}
	if j.v1 {
		copy(res.v1[20*p:], w.sha1.Sum(w.sum[:0]))
	}
	return 0, nil
}

// piecePair hashes the v1 pieces p and p+1 side by side (sha1x2Blocks)
// and reports whether it did: not if p+1 is missing or short (the last
// piece), nor if a read fails, and then the caller hashes them one at a
// time with piece, which says which file failed.
func (w *worker) piecePair(p int, res *hashResult) bool {
	j := w.job
	start := int64(p) * j.pieceLen
	if start+2*j.pieceLen > j.total() {
		return false
	}
	h := [2][5]uint32{sha1Init, sha1Init}
	for off := int64(0); off < j.pieceLen; off += int64(len(w.buf)) {
		// pieceLen and the buffers are powers of two: every chunk is whole.
		a, b := w.buf, w.pairBuf
		if w.readData(a, start+off) != nil || w.readData(b, start+j.pieceLen+off) != nil {
			return false
		}
		sha1x2Blocks(&h, &a[0], &b[0], len(a)/64)
	}
	sha1x2Sums(&h, j.pieceLen, res.v1[20*p:], res.v1[20*(p+1):])
	return true
}

// readData fills dst with the torrent's data from pos, across files and
// pads as they lie end to end.
func (w *worker) readData(dst []byte, pos int64) error {
	j := w.job
	i := sort.Search(len(j.files), func(i int) bool {
		f := &j.files[i]
		return f.Offset+f.Length > pos
	})
	for ; len(dst) > 0; i++ {
		f := &j.files[i]
		n := min(int64(len(dst)), f.Offset+f.Length-pos)
		if n <= 0 {
			continue // an empty file
		}
		if f.Pad {
			clear(dst[:n])
		} else if err := w.readAt(dst[:n], i, pos-f.Offset); err != nil {
			return err
		}
		dst, pos = dst[n:], pos+n
	}
	return nil
}

// readAt fills buf from file i at offset off.
func (w *worker) readAt(buf []byte, i int, off int64) error {
	if err := w.open(i); err != nil {
		return err
	}
	got, err := w.f.ReadAt(buf, off)
	if got == len(buf) {
		return nil
	}
	if errors.Is(err, io.EOF) {
		if w.job.listed == nil {
			return fmt.Errorf("%s: ends at %d bytes, want %d", w.job.disk[i], off+int64(got), w.job.files[i].Length)
		}
		return fmt.Errorf("%s: %w: it ends at %d bytes, want %d", w.job.disk[i], ErrChanged, off+int64(got), w.job.files[i].Length)
	}
	return fmt.Errorf("read %s: %w", w.job.disk[i], err)
}
