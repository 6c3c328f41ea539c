package memswarm

import (
	"runtime"
	"slices"
	"sync"
	"unsafe"
)

// The arena holds what the store keeps per torrent and per peer, outside
// the Go heap: the torrents' records, their peer lists and the peers. In
// the heap they counted towards the collector's goal, and the arrays a
// growing swarm left behind stayed resident until the next collection,
// which a heap holding the registry may not reach for tens of megabytes.
// Here a chunk freed is reused at once, a slab whose chunks are all free
// goes back to the operating system at once, and a page becomes resident
// only when written.
//
// The rule that keeps this safe: memory in the arena never holds a pointer
// to anything but the arena. The collector does not look inside it, so a
// pointer from it to a Go object would not keep that object alive. Where
// nothing can be mapped, the regions are plain byte slices in the heap,
// kept alive by the arena, and the rule still holds.
//
// Chunks up to maxChunk come in size classes, carved from slabs of one
// class; larger ones are runs of whole pages.

const (
	slabBytes   = 64 << 10
	maxChunk    = slabBytes / 4
	regionBytes = 1 << 30 // mapped at a time (unix: address space reserved, nothing committed)
	heapRegion  = 16 << 20
	slabsPer    = regionBytes / slabBytes
	pageBytes   = 4096
	// warmSlabs emptied slabs stay resident for reuse: when swarms grow
	// in step, each size class's slabs empty as the next class's fill,
	// and giving each back only to fault its pages in again costs a
	// system call and a fault per page.
	warmSlabs = 16
)

// chunkClasses are the chunk sizes: every 8 bytes up to 256, then steps of
// a sixteenth up to 1 KiB and a thirty-second past it, so a chunk wastes
// about 2% on average.
var chunkClasses, classIndex = func() ([]uint32, []uint8) {
	var sizes []uint32
	for s := uint32(8); s <= 256; s += 8 {
		sizes = append(sizes, s)
	}
	for s := uint32(256); s < maxChunk; {
		step := s / 16
		if s >= 1024 {
			step = s / 32
		}
		s += step &^ 7
		sizes = append(sizes, min(s, maxChunk))
	}
	index := make([]uint8, maxChunk/8+1) // by size in 8-byte units, rounded up
	c := 0
	for u := range index {
		for uint32(u)*8 > sizes[c] {
			c++
		}
		index[u] = uint8(c)
	}
	return sizes, index
}()

// slabRef names a slab: its region's index times slabsPer plus its index
// in the region, plus one, so that 0 names none.
type slabRef uint32

type slabMeta struct {
	class  uint8
	dirty  bool   // chunks never handed out since may hold old bytes
	used   uint16 // chunks handed out
	carved uint16 // chunks ever handed out; those past it were never written
	free   uint16 // index plus one of the first freed chunk, 0 if none; each holds the next
	warm   uint16 // pages written, while the slab is empty and kept warm
	prev   slabRef
	next   slabRef
}

type region struct {
	mem    []byte
	top    int        // bytes carved into slabs and runs
	slabs  []slabMeta // one per slabBytes below top, used where a slab is
	mapped bool       // mem is a mapping, whose pages can be given back
}

// runRef names a run of pages given back: its region and offset.
type runRef struct{ region, off int }

// arena is safe for concurrent use.
type arena struct {
	mu        sync.Mutex // guards the fields below
	mapped    *mappings  // apart from the arena, so that a cleanup can unmap them
	regions   []*region
	partial   []slabRef        // per class: the first slab with a chunk to hand out
	freeSlabs []slabRef        // slabs given back to the system, to reuse
	warm      []slabRef        // emptied slabs kept resident, at most warmSlabs
	warmBytes int              // bytes written in them
	freeRuns  map[int][]runRef // runs given back, by size
	noMap     bool             // mapping failed once: regions come from the heap
	slabs     int              // slabs holding chunks
	chunks    int              // chunks handed out from slabs
	resident  int              // bytes of slabs up to their last chunk carved, and of runs
}

// mappings are the regions an arena mapped, unmapped once the arena is
// unreachable: by then nothing else points into them, since only the
// arena's store does.
type mappings struct{ mem [][]byte }

func newArena() *arena {
	a := &arena{mapped: new(mappings), partial: make([]slabRef, len(chunkClasses)), freeRuns: map[int][]runRef{}}
	runtime.AddCleanup(a, func(m *mappings) {
		for _, mem := range m.mem {
			unmapRegion(mem)
		}
	}, a.mapped)
	return a
}

// alloc returns a zero-length slice over a chunk of at least size bytes,
// aligned to 8, zeroed if zero is set; its capacity is the chunk's size.
// It allocates in the Go heap only when it needs a region and none can be
// mapped.
func (a *arena) alloc(size int, zero bool) []byte {
	a.mu.Lock()
	defer a.mu.Unlock()
	if size > maxChunk {
		return a.allocRunLocked(size)
	}
	c := classIndex[(size+7)/8]
	ref := a.partial[c]
	if ref == 0 {
		ref = a.newSlabLocked(c)
	}
	r, m := a.slab(ref)
	csize := int(chunkClasses[c])
	base := int(ref-1) % slabsPer * slabBytes
	var idx int
	dirty := m.free != 0
	if dirty {
		idx = int(m.free) - 1
		m.free = *(*uint16)(unsafe.Pointer(&r.mem[base+idx*csize]))
	} else {
		idx = int(m.carved)
		m.carved++
		a.resident += roundPage(int(m.carved)*csize) - roundPage(idx*csize)
		dirty = m.dirty
	}
	m.used++
	if m.free == 0 && int(m.carved) == slabBytes/csize {
		a.unlinkLocked(c, ref)
	}
	a.chunks++
	off := base + idx*csize
	chunk := r.mem[off : off+csize : off+csize]
	if dirty && zero {
		clear(chunk) // a chunk carved for the first time from a slab fresh from the system is zero already
	}
	return chunk[:0]
}

// free gives back a chunk alloc returned, as a slice from its start with
// the capacity alloc gave it, or less but more than the next smaller
// class's. The caller must not use the chunk again.
func (a *arena) free(b []byte) {
	if cap(b) == 0 {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	ri, off := a.locateLocked(b)
	r := a.regions[ri]
	if cap(b) > maxChunk {
		n := roundPage(cap(b))
		a.releaseLocked(r, r.mem[off:off+n])
		a.freeRuns[n] = append(a.freeRuns[n], runRef{ri, off})
		a.resident -= n
		return
	}
	ref := slabRef(ri*slabsPer + off/slabBytes + 1)
	m := &r.slabs[off/slabBytes]
	csize := int(chunkClasses[m.class])
	idx := off % slabBytes / csize
	wasFull := m.free == 0 && int(m.carved) == slabBytes/csize
	*(*uint16)(unsafe.Pointer(&r.mem[off])) = m.free
	m.free = uint16(idx + 1)
	m.used--
	a.chunks--
	// The whole pages inside a large chunk (past its link to the next
	// free one) go back now, not when the slab empties.
	if from, to := roundPage(off+2), (off+csize)&^(pageBytes-1); r.mapped && to > from {
		releasePages(r.mem[from:to])
	}
	switch {
	case m.used == 0:
		if !wasFull {
			a.unlinkLocked(m.class, ref)
		}
		written := roundPage(int(m.carved) * csize)
		a.resident -= written
		a.slabs--
		*m = slabMeta{}
		if len(a.warm) < warmSlabs {
			a.warm = append(a.warm, ref)
			a.warmBytes += written
			m.warm = uint16(written / pageBytes)
			break
		}
		base := off - off%slabBytes
		a.releaseLocked(r, r.mem[base:base+slabBytes])
		a.freeSlabs = append(a.freeSlabs, ref)
	case wasFull:
		a.linkLocked(m.class, ref)
	}
}

// locateLocked returns the region that holds the chunk b starts, and
// b's offset in it.
func (a *arena) locateLocked(b []byte) (ri, off int) {
	p := uintptr(unsafe.Pointer(unsafe.SliceData(b[:1])))
	ri = slices.IndexFunc(a.regions, func(r *region) bool {
		start := uintptr(unsafe.Pointer(unsafe.SliceData(r.mem)))
		return p >= start && p < start+uintptr(len(r.mem))
	})
	if ri < 0 {
		panic("memswarm: a chunk the arena did not hand out")
	}
	return ri, int(p - uintptr(unsafe.Pointer(unsafe.SliceData(a.regions[ri].mem))))
}

// sparse reports whether the chunk b, as alloc returned it, sits in a
// slab less than three quarters used that its class does not hand out from first.
// Swarms that grow in step pass each size class by together and leave a
// few chunks behind in many of its slabs (a quarter of the memory of
// swarms of 1,000 peers); moving those chunks into the class's first slab
// lets the others empty and go back to the system.
func (a *arena) sparse(b []byte) bool {
	if cap(b) == 0 || cap(b) > maxChunk {
		return false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	ri, off := a.locateLocked(b)
	ref := slabRef(ri*slabsPer + off/slabBytes + 1)
	m := &a.regions[ri].slabs[off/slabBytes]
	return a.partial[m.class] != ref && int(m.used)*4 < slabBytes/int(chunkClasses[m.class])*3
}

// dropWarm gives the emptied slabs kept warm back to the system. The
// sweep calls it: they are for the growth between two sweeps.
func (a *arena) dropWarm() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, ref := range a.warm {
		r, m := a.slab(ref)
		base := int(ref-1) % slabsPer * slabBytes
		a.releaseLocked(r, r.mem[base:base+slabBytes])
		m.warm = 0
		a.freeSlabs = append(a.freeSlabs, ref)
	}
	a.warm = a.warm[:0]
	a.warmBytes = 0
}

// releaseLocked gives the pages of b, in r, back to the system, or zeroes
// them where they are heap memory, so that b reads as zero either way.
func (a *arena) releaseLocked(r *region, b []byte) {
	if r.mapped {
		releasePages(b)
	} else {
		clear(b)
	}
}

// allocRunLocked returns a chunk of whole pages, from a run given back or
// the end of the last region.
func (a *arena) allocRunLocked(size int) []byte {
	n := roundPage(size)
	a.resident += n
	if free := a.freeRuns[n]; len(free) > 0 {
		ref := free[len(free)-1]
		a.freeRuns[n] = free[:len(free)-1]
		mem := a.regions[ref.region].mem
		return mem[ref.off : ref.off : ref.off+n]
	}
	r := a.roomLocked(n, pageBytes)
	off := r.top
	r.top += n
	return r.mem[off : off : off+n]
}

// roomLocked returns the last region with n bytes free from its top
// aligned to align, adding a region if needed, with top so aligned.
func (a *arena) roomLocked(n, align int) *region {
	if l := len(a.regions); l > 0 {
		r := a.regions[l-1]
		if top := (r.top + align - 1) &^ (align - 1); top+n <= len(r.mem) {
			r.top = top
			return r
		}
	}
	r := &region{}
	if !a.noMap {
		mem, err := mapRegion(max(regionBytes, roundUp(n, slabBytes)))
		if err == nil {
			r.mem, r.mapped = mem, true
			a.mapped.mem = append(a.mapped.mem, mem)
		} else {
			a.noMap = true
		}
	}
	if r.mem == nil {
		r.mem = make([]byte, max(heapRegion, roundUp(n, slabBytes)))
	}
	a.regions = append(a.regions, r)
	return r
}

func (a *arena) slab(ref slabRef) (*region, *slabMeta) {
	i := int(ref - 1)
	r := a.regions[i/slabsPer]
	return r, &r.slabs[i%slabsPer]
}

// newSlabLocked readies a slab for class c and makes it the class's
// first.
func (a *arena) newSlabLocked(c uint8) slabRef {
	var ref slabRef
	dirty := false
	if n := len(a.warm); n > 0 {
		ref, dirty = a.warm[n-1], true
		a.warm = a.warm[:n-1]
		_, m := a.slab(ref)
		a.warmBytes -= int(m.warm) * pageBytes
	} else if n := len(a.freeSlabs); n > 0 {
		ref = a.freeSlabs[n-1]
		a.freeSlabs = a.freeSlabs[:n-1]
	} else {
		r := a.roomLocked(slabBytes, slabBytes)
		for len(r.slabs) <= r.top/slabBytes {
			r.slabs = append(r.slabs, slabMeta{})
		}
		ref = slabRef(slices.Index(a.regions, r)*slabsPer + r.top/slabBytes + 1)
		r.top += slabBytes
	}
	_, m := a.slab(ref)
	*m = slabMeta{class: c, dirty: dirty}
	a.linkLocked(c, ref)
	a.slabs++
	return ref
}

func (a *arena) linkLocked(c uint8, ref slabRef) {
	_, m := a.slab(ref)
	m.prev, m.next = 0, a.partial[c]
	if m.next != 0 {
		_, n := a.slab(m.next)
		n.prev = ref
	}
	a.partial[c] = ref
}

func (a *arena) unlinkLocked(c uint8, ref slabRef) {
	_, m := a.slab(ref)
	if m.prev != 0 {
		_, p := a.slab(m.prev)
		p.next = m.next
	} else {
		a.partial[c] = m.next
	}
	if m.next != 0 {
		_, n := a.slab(m.next)
		n.prev = m.prev
	}
	m.prev, m.next = 0, 0
}

// inUse returns how many slabs hold chunks, how many chunks they hand
// out, and about how many bytes the arena keeps resident: its slabs up to
// their last chunk carved, the emptied slabs it keeps warm, and its runs
// whole.
func (a *arena) inUse() (slabs, chunks, resident int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.slabs, a.chunks, a.resident + a.warmBytes
}

func roundPage(n int) int   { return roundUp(n, pageBytes) }
func roundUp(n, to int) int { return (n + to - 1) / to * to }

// newIn returns a zeroed T in the arena. T must hold no pointer to
// anything outside the arena.
func newIn[T any](a *arena) *T {
	var t T
	return (*T)(unsafe.Pointer(unsafe.SliceData(a.alloc(int(unsafe.Sizeof(t)), true)[:1])))
}

// freeIn gives back a T that newIn returned.
func freeIn[T any](a *arena, p *T) {
	a.free(unsafe.Slice((*byte)(unsafe.Pointer(p)), unsafe.Sizeof(*p)))
}

// makeIn returns a slice of n zeroed Ts in the arena, with room for at
// least n; the same rule holds for T.
func makeIn[T any](a *arena, n int) []T {
	var t T
	b := a.alloc(n*int(unsafe.Sizeof(t)), true)
	return unsafe.Slice((*T)(unsafe.Pointer(unsafe.SliceData(b[:1]))), cap(b)/int(unsafe.Sizeof(t)))[:n]
}

// freeSlice gives back a slice makeIn returned, with its capacity.
func freeSlice[T any](a *arena, s []T) {
	if cap(s) == 0 {
		return
	}
	var t T
	a.free(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(s[:1]))), cap(s)*int(unsafe.Sizeof(t))))
}
