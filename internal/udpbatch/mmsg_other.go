//go:build !linux

package udpbatch

import (
	"net"
	"net/netip"
)

const haveMmsg = false

// mmsgConn is Linux only; New never makes one elsewhere.
type mmsgConn struct{}

func newMmsgConn(*net.UDPConn, [][]byte, int) (*mmsgConn, error) { panic("udpbatch: no recvmmsg") }

func (*mmsgConn) read(bool) (int, error)    { panic("udpbatch: no recvmmsg") }
func (*mmsgConn) packet(int) []byte         { panic("udpbatch: no recvmmsg") }
func (*mmsgConn) source(int) netip.AddrPort { panic("udpbatch: no recvmmsg") }
func (*mmsgConn) reply(int, []byte)         { panic("udpbatch: no recvmmsg") }
func (*mmsgConn) queue([]byte, []byte)      { panic("udpbatch: no recvmmsg") }
func (*mmsgConn) flush() (int, error)       { panic("udpbatch: no recvmmsg") }
func (*mmsgConn) discard()                  { panic("udpbatch: no recvmmsg") }
