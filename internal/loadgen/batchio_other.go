//go:build !linux

package loadgen

import (
	"errors"
	"net"
	"os"
	"time"
)

// connIO is batchIO one datagram per system call, where recvmmsg and
// sendmmsg are missing.
type connIO struct {
	c    *net.UDPConn
	bufs [][]byte
}

func newBatchIO(c *net.UDPConn, recvBufs [][]byte, _ int) (batchIO, error) {
	return &connIO{c: c, bufs: recvBufs}, nil
}

func (c *connIO) recv(lens []int) (int, error) {
	n, err := c.c.Read(c.bufs[0])
	if err != nil {
		return 0, err
	}
	lens[0] = n
	return 1, nil
}

func (c *connIO) poll(lens []int) (int, error) {
	if err := c.c.SetReadDeadline(time.Now()); err != nil {
		return 0, err
	}
	n, err := c.recv(lens)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return 0, nil
	}
	return n, err
}

func (c *connIO) send(parts, _ [][]byte) (int, error) {
	for i, p := range parts {
		if _, err := c.c.Write(p); err != nil {
			return i, err
		}
	}
	return len(parts), nil
}
