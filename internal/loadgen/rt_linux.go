package loadgen

import (
	"errors"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// setRealtime puts every thread of this process in SCHED_FIFO at prio.
// Threads the Go runtime starts later inherit the policy of the thread
// that starts them; a pass that finds every thread already done ends the
// work, so one started meanwhile is not missed.
func setRealtime(prio int) error {
	attr := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_FIFO, Priority: uint32(prio)}
	for range 5 {
		ents, err := os.ReadDir("/proc/self/task")
		if err != nil {
			return err
		}
		changed := 0
		for _, e := range ents {
			tid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			if cur, err := unix.SchedGetAttr(tid, 0); err == nil && cur.Policy == attr.Policy && cur.Priority == attr.Priority {
				continue
			}
			if err := unix.SchedSetAttr(tid, &attr, 0); err != nil {
				if errors.Is(err, unix.ESRCH) {
					continue // the thread has ended
				}
				if errors.Is(err, unix.EPERM) {
					return errors.New("not permitted: needs root or CAP_SYS_NICE (or RLIMIT_RTPRIO)")
				}
				return err
			}
			changed++
		}
		if changed == 0 {
			return nil
		}
	}
	return errors.New("threads kept appearing while their priority was set")
}

// threadsRealtime reports whether every thread of this process is in
// SCHED_FIFO at prio.
func threadsRealtime(prio int) (bool, error) {
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return false, err
	}
	for _, e := range ents {
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cur, err := unix.SchedGetAttr(tid, 0)
		if errors.Is(err, unix.ESRCH) {
			continue
		}
		if err != nil {
			return false, err
		}
		if cur.Policy != unix.SCHED_FIFO || cur.Priority != uint32(prio) {
			return false, nil
		}
	}
	return true, nil
}
