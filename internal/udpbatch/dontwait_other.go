//go:build !unix

package udpbatch

// dontWait is 0 where receives have no flag to return at once.
const dontWait = 0
