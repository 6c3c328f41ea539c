//go:build !amd64 || purego

package metainfo

// haveSHA1x2 is false: workers hash v1 pieces one at a time.
var haveSHA1x2 = false

func sha1x2Blocks(h *[2][5]uint32, a, b *byte, blocks int) {
	panic("metainfo: sha1x2Blocks without the SHA extensions")
}
