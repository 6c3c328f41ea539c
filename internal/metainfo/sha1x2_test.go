package metainfo

import (
	"crypto/sha1"
	"math/rand/v2"
	"testing"
)

// TestSHA1x2MatchesCryptoSHA1: each lane's sum equals crypto/sha1's of its
// message, for messages of 0 to 300 blocks fed in calls of various sizes.
func TestSHA1x2MatchesCryptoSHA1(t *testing.T) {
	if !haveSHA1x2 {
		t.Skip("this CPU has no SHA extensions: sha1x2Blocks is not used")
	}
	r := rand.New(rand.NewPCG(1, 2))
	for _, blocks := range []int{0, 1, 2, 3, 16, 255, 256, 300} {
		a := make([]byte, 64*blocks+64) // room for &a[0] when blocks is 0
		b := make([]byte, 64*blocks+64)
		for i := range a {
			a[i], b[i] = byte(r.Uint32()), byte(r.Uint32())
		}
		a, b = a[:64*blocks], b[:64*blocks]
		h := [2][5]uint32{sha1Init, sha1Init}
		for off := 0; off < blocks; { // calls of 1, 2, 3… blocks
			n := min(off%7+1, blocks-off)
			sha1x2Blocks(&h, &a[64*off], &b[64*off], n)
			off += n
		}
		var sa, sb [sha1.Size]byte
		sha1x2Sums(&h, int64(len(a)), sa[:], sb[:])
		if want := sha1.Sum(a); sa != want {
			t.Errorf("%d blocks: lane 0 %x, want %x", blocks, sa, want)
		}
		if want := sha1.Sum(b); sb != want {
			t.Errorf("%d blocks: lane 1 %x, want %x", blocks, sb, want)
		}
	}
}

// BenchmarkSHA1x2 measures two 1 MiB messages side by side against one
// with crypto/sha1; the bytes counted are both messages.
func BenchmarkSHA1x2(b *testing.B) {
	if !haveSHA1x2 {
		b.Skip("no SHA extensions")
	}
	x, y := make([]byte, 1<<20), make([]byte, 1<<20)
	var sa, sb [sha1.Size]byte
	b.Run("x2", func(b *testing.B) {
		b.SetBytes(2 << 20)
		for b.Loop() {
			h := [2][5]uint32{sha1Init, sha1Init}
			sha1x2Blocks(&h, &x[0], &y[0], len(x)/64)
			sha1x2Sums(&h, int64(len(x)), sa[:], sb[:])
		}
	})
	b.Run("crypto-sha1", func(b *testing.B) {
		b.SetBytes(1 << 20)
		for b.Loop() {
			sa = sha1.Sum(x)
		}
	})
}
