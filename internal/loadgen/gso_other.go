//go:build !linux

package loadgen

import "net"

const gsoOOBLen = 0

func gsoSupported(*net.UDPConn) bool { return false }

func putGSO(b []byte, size int) []byte { panic("loadgen: UDP GSO is Linux only") }
