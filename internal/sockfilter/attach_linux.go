package sockfilter

import (
	"errors"
	"fmt"
	"syscall"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// Attach sets prog as the filter of the socket behind c (a listener's
// SyscallConn), replacing the one it had. Connections accepted later
// inherit it; those already open keep the filter they were born with. The
// socket must be plain TCP: the kernel refuses a filter on a multipath
// TCP one, which Go's listeners are unless told otherwise.
func Attach(c syscall.RawConn, prog []bpf.RawInstruction) error {
	if len(prog) == 0 {
		return fmt.Errorf("sockfilter: empty program")
	}
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: (*unix.SockFilter)(unsafe.Pointer(&prog[0]))}
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptSockFprog(int(fd), unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &fprog)
	})
	if err == nil {
		err = serr
	}
	if errors.Is(err, unix.EOPNOTSUPP) {
		return fmt.Errorf("sockfilter: attach: %w (a multipath TCP socket takes no filter: listen with ListenConfig.SetMultipathTCP(false))", err)
	}
	if err != nil {
		return fmt.Errorf("sockfilter: attach: %w", err)
	}
	return nil
}
