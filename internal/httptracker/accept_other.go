//go:build !linux

package httptracker

import (
	"net"
	"os"
)

// rawListener returns nil: acceptRaw is for Linux only, and elsewhere
// every connection is accepted by net before admit decides.
func rawListener(net.Listener) *os.File { return nil }

func (l *limitListener) acceptRaw() (net.Conn, error) { return l.Listener.Accept() }
