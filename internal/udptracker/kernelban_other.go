//go:build !linux

package udptracker

import (
	"errors"
	"net"
	"net/netip"
	"slices"
)

const haveKernelBans = false

const maxKernelBans = 0

func setKernelBans(pc *net.UDPConn, prefixes []netip.Prefix) error {
	return errors.New("kernel socket filters need Linux")
}

func sameBans(a, b []netip.Prefix) bool { return slices.Equal(a, b) }
