//go:build !linux

package limit

import "testing"

type cpuTimer struct{}

func startCPU() cpuTimer                         { return cpuTimer{} }
func (cpuTimer) reportCPU(b *testing.B, per int) {}
