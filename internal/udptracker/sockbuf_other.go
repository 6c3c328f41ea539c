//go:build !linux

package udptracker

import (
	"errors"
	"net"
)

// setBuffers sizes the socket's receive and send buffers to n bytes, as
// far as the system allows.
func setBuffers(pc *net.UDPConn, n int) error {
	return errors.Join(pc.SetReadBuffer(n), pc.SetWriteBuffer(n))
}
