//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package udptracker

import "syscall"

// haveReusePort is false where SO_REUSEPORT is missing: Listen then
// accepts only one worker.
const haveReusePort = false

func reusePort(network, address string, c syscall.RawConn) error { return nil }
