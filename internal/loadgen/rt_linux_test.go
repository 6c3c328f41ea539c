package loadgen

import (
	"runtime"

	"golang.org/x/sys/unix"
)

// canRealtime reports why this process may not use SCHED_FIFO, trying it
// on a thread of its own that is thrown away afterwards.
func canRealtime() error {
	done := make(chan error)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		attr := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_FIFO, Priority: 1}
		done <- unix.SchedSetAttr(0, &attr, 0)
	}()
	return <-done
}
