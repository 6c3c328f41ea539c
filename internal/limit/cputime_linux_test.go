package limit

import (
	"runtime"
	"syscall"
	"testing"
	"time"
)

// cpuTimer measures the CPU time of the benchmark's own thread, which on a
// shared machine is steadier than the wall time ns/op reports: it leaves
// out the time other processes held the CPU.
type cpuTimer struct{ start time.Duration }

const rusageThread = 1 // RUSAGE_THREAD

func threadCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// startCPU locks the goroutine to its thread until reportCPU.
func startCPU() cpuTimer {
	runtime.LockOSThread()
	return cpuTimer{threadCPU()}
}

// reportCPU reports the thread's CPU time per op as cpu-ns/op (per per
// ops of each iteration).
func (c cpuTimer) reportCPU(b *testing.B, per int) {
	d := threadCPU() - c.start
	runtime.UnlockOSThread()
	if c.start > 0 && b.N > 0 {
		b.ReportMetric(float64(d)/float64(b.N*per), "cpu-ns/op")
	}
}
