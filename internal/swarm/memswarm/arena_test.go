package memswarm

import (
	"math/rand/v2"
	"testing"
	"unsafe"
)

// TestArena allocates and frees chunks of every size in random order,
// filling each with a pattern of its own: no chunk may overlap another or
// be handed out while held, and once all are freed nothing stays resident.
func TestArena(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	a := newArena()
	type held struct {
		b   []byte
		tag byte
	}
	var live []held
	check := func(h held) {
		for i, c := range h.b[:cap(h.b)] {
			if c != h.tag {
				t.Fatalf("chunk of %d bytes tagged %d holds %d at %d: another chunk overlaps it", cap(h.b), h.tag, c, i)
			}
		}
	}
	for step := range 20_000 {
		if len(live) > 0 && (rng.IntN(2) == 0 || step > 15_000) {
			i := rng.IntN(len(live))
			check(live[i])
			a.free(live[i].b)
			live[i] = live[len(live)-1]
			live = live[:len(live)-1]
			continue
		}
		size := 1 + rng.IntN(64)
		switch rng.IntN(10) {
		case 0:
			size = maxChunk - 8 + rng.IntN(16) // either side of the largest class
		case 1:
			size = maxChunk + rng.IntN(4*maxChunk) // runs
		}
		b := a.alloc(size, true)
		if len(b) != 0 || cap(b) < size || uintptr(unsafe.Pointer(unsafe.SliceData(b[:1])))%8 != 0 {
			t.Fatalf("alloc(%d) = len %d cap %d at %p", size, len(b), cap(b), unsafe.SliceData(b[:1]))
		}
		h := held{b[:cap(b)], byte(step)}
		for i, c := range h.b {
			if c != 0 {
				t.Fatalf("alloc(%d): byte %d of the chunk is %d, want zero", size, i, c)
			}
			h.b[i] = h.tag
		}
		live = append(live, h)
	}
	for _, h := range live {
		check(h)
		a.free(h.b)
	}
	checkEmpty(t, a)
	a.dropWarm()
	if _, _, resident := a.inUse(); resident != 0 {
		t.Fatalf("all freed and the warm slabs dropped, %d bytes stay resident", resident)
	}
	if a.noMap {
		t.Log("nothing could be mapped: the regions came from the heap")
	}
}

// TestChunkClasses: every size up to maxChunk has a class that fits it,
// no more than 1/16 (or 8 bytes) larger, and there are few enough
// classes for a uint8.
func TestChunkClasses(t *testing.T) {
	for size := 1; size <= maxChunk; size++ {
		c := chunkClasses[classIndex[(size+7)/8]]
		if int(c) < size || int(c) > size+max(8, size/16)+8 {
			t.Fatalf("size %d gets class %d", size, c)
		}
	}
	if len(chunkClasses) > 256 {
		t.Fatalf("%d classes", len(chunkClasses))
	}
}

// checkEmpty fails t unless a hands out nothing and keeps resident no
// more than its warm slabs.
func checkEmpty(t *testing.T, a *arena) {
	t.Helper()
	if slabs, chunks, resident := a.inUse(); slabs != 0 || chunks != 0 || resident > warmSlabs*slabBytes {
		t.Fatalf("all freed, the arena holds %d chunks in %d slabs and %d bytes resident", chunks, slabs, resident)
	}
}
