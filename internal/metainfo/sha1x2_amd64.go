//go:build amd64 && !purego

package metainfo

import "golang.org/x/sys/cpu"

// sha1x2Blocks hashes blocks 64-byte blocks of a into h[0] and as many of
// b into h[1]. It needs the SHA extensions, SSSE3 and SSE4.1 (haveSHA1x2).
//
//go:noescape
func sha1x2Blocks(h *[2][5]uint32, a, b *byte, blocks int)

func cpuid(leaf, sub uint32) (a, b, c, d uint32)

// haveSHA1x2 reports whether sha1x2Blocks runs on this CPU.
var haveSHA1x2 = func() bool {
	if maxLeaf, _, _, _ := cpuid(0, 0); maxLeaf < 7 || !cpu.X86.HasSSSE3 || !cpu.X86.HasSSE41 {
		return false
	}
	_, ebx, _, _ := cpuid(7, 0)
	return ebx&(1<<29) != 0 // SHA
}()
