package sensor

import (
	"net/netip"
	"strconv"
	"time"
)

// Kind says what a sensor counted.
type Kind uint8

const (
	// SYN is a TCP SYN to one of warden's ports: a connection attempt,
	// whose source address proves nothing.
	SYN Kind = iota
	// KernelDropped is a datagram the kernel dropped before warden read
	// it, because its source was banned.
	KernelDropped
)

func (k Kind) String() string {
	switch k {
	case SYN:
		return "syn"
	case KernelDropped:
		return "kernel_dropped"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Sink is told what a sensor counted: n of kind from src, batched per
// source per poll. It is called from the sensor's goroutine and must not
// block.
type Sink interface {
	Sensed(src netip.Addr, kind Kind, n uint64, now time.Time)
}
