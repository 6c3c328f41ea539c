//go:build !linux

package udptracker

import (
	"errors"
	"net"
)

// haveBacklog is false where a socket's receive queue cannot be read:
// the worker then never sheds.
const haveBacklog = false

type backlog struct{}

func newBacklog(*net.UDPConn) (*backlog, error) {
	return nil, errors.New("reading the receive queue needs Linux")
}

func (*backlog) read() (queued, capacity uint32, err error) {
	return 0, 0, errors.New("reading the receive queue needs Linux")
}
