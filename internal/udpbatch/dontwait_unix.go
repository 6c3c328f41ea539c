//go:build unix

package udpbatch

import "golang.org/x/sys/unix"

// dontWait is the flag that makes a receive return at once.
const dontWait = unix.MSG_DONTWAIT
