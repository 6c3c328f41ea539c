//go:build !linux

package udptracker

import "net"

// ioName names the batch I/O in the startup log line.
const ioName = "x/net"

// newBatchConn returns the portable batchConn; only Linux has a faster one.
func newBatchConn(pc *net.UDPConn, v6 bool, batch int) (batchConn, error) {
	return newXNetConn(pc, v6, batch), nil
}
