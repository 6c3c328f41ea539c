//go:build !linux

package sockfilter

import (
	"syscall"

	"golang.org/x/net/bpf"
)

// Attach returns ErrUnsupported: only Linux runs classic BPF filters on
// TCP sockets in the way Program expects.
func Attach(c syscall.RawConn, prog []bpf.RawInstruction) error { return ErrUnsupported }
