// Package procstat reads what the Linux kernel counts about warden's
// sockets and not warden itself: datagrams a UDP socket dropped because
// its receive buffer was full (/proc/net/udp, /proc/net/udp6), and the
// TCP listen queue overflows and SYN cookies of the network namespace
// (the TcpExt lines of /proc/net/netstat). Package metrics reads it at
// scrape time; nothing on the request path does.
//
// The readers stream the files line by line, so their memory is bounded
// whatever the number of sockets on the machine, and a line they cannot
// read is an error naming the file and line, never a silent zero.
package procstat

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"
)

// UDP sums the UDP sockets bound to one of the ports asked for.
type UDP struct {
	Sockets int
	// Drops counts datagrams the kernel dropped since each socket was
	// opened: a full receive buffer, or a socket filter (kernel bans).
	Drops uint64
	// RxQueueBytes is what waits in the receive queues now.
	RxQueueBytes uint64
}

// ReadUDP reads /proc/net/udp and /proc/net/udp6 and sums the sockets
// whose local port is in ports. A file that does not exist (no IPv6) is
// skipped; any other error is returned.
func ReadUDP(ports []uint16) (UDP, error) {
	var sum UDP
	for _, path := range []string{"/proc/net/udp", "/proc/net/udp6"} {
		f, err := os.Open(path)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return sum, err
		}
		err = ParseUDP(f, ports, &sum)
		f.Close()
		if err != nil {
			return sum, fmt.Errorf("%s: %w", path, err)
		}
	}
	return sum, nil
}

// maxLine bounds a line of the kernel's tables (about 150 bytes for a
// socket, 70 names for a TcpExt header on 6.x, 2 KiB).
const maxLine = 16 << 10

// ParseUDP reads a table in the format of /proc/net/udp (or udp6) from r
// and adds the sockets bound to one of ports to sum.
func ParseUDP(r io.Reader, ports []uint16, sum *UDP) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxLine)
	// Columns, counted in the header: "sl local_address rem_address st
	// tx_queue rx_queue tr tm->when retrnsmt uid timeout inode ref
	// pointer drops"; a socket's line has tx_queue:rx_queue and
	// tr:tm->when as one field each, so drops is field 12 of a socket's
	// line, which a header check keeps honest.
	const (
		fLocal  = 1
		fQueues = 4
		fDrops  = 12
	)
	line := 0
	for sc.Scan() {
		line++
		fields := bytes.Fields(sc.Bytes())
		if line == 1 {
			if len(fields) < 15 || string(fields[0]) != "sl" || string(fields[len(fields)-1]) != "drops" {
				return fmt.Errorf("line 1: not the header of a UDP socket table")
			}
			continue
		}
		if len(fields) < fDrops+1 {
			return fmt.Errorf("line %d: %d fields, want at least %d", line, len(fields), fDrops+1)
		}
		_, portHex, ok := bytes.Cut(fields[fLocal], []byte{':'})
		if !ok {
			return fmt.Errorf("line %d: local address %q has no port", line, fields[fLocal])
		}
		port, err := strconv.ParseUint(string(portHex), 16, 16)
		if err != nil {
			return fmt.Errorf("line %d: local port %q: not 4 hex digits", line, portHex)
		}
		if !contains(ports, uint16(port)) {
			continue
		}
		_, rxHex, ok := bytes.Cut(fields[fQueues], []byte{':'})
		if !ok {
			return fmt.Errorf("line %d: queues %q: want tx:rx", line, fields[fQueues])
		}
		rx, err := strconv.ParseUint(string(rxHex), 16, 64)
		if err != nil {
			return fmt.Errorf("line %d: receive queue %q: not hex", line, rxHex)
		}
		drops, err := strconv.ParseUint(string(fields[fDrops]), 10, 64)
		if err != nil {
			return fmt.Errorf("line %d: drops %q: not a count", line, fields[fDrops])
		}
		sum.Sockets++
		sum.Drops += drops
		sum.RxQueueBytes += rx
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("line %d: %w", line+1, err)
	}
	if line == 0 {
		return fmt.Errorf("empty: no header")
	}
	return nil
}

func contains(ports []uint16, p uint16) bool {
	for _, q := range ports {
		if q == p {
			return true
		}
	}
	return false
}

// TCP are the namespace's counters of listen queues and SYN cookies, since
// boot (all ports: the kernel does not count them per socket).
type TCP struct {
	// ListenOverflows counts handshakes completed while an accept queue
	// was full; ListenDrops every connection a listener dropped.
	ListenOverflows uint64 `json:"listen_overflows"`
	ListenDrops     uint64 `json:"listen_drops"`
	// SyncookiesSent counts SYNs answered with a cookie because a SYN
	// queue was full (a SYN flood, or a backlog too small);
	// SyncookiesRecv cookies that came back valid, SyncookiesFailed those
	// that did not.
	SyncookiesSent   uint64 `json:"syncookies_sent"`
	SyncookiesRecv   uint64 `json:"syncookies_recv"`
	SyncookiesFailed uint64 `json:"syncookies_failed"`
}

// ReadTCP reads /proc/net/netstat.
func ReadTCP() (TCP, error) {
	f, err := os.Open("/proc/net/netstat")
	if err != nil {
		return TCP{}, err
	}
	defer f.Close()
	t, err := ParseTCP(f)
	if err != nil {
		return t, fmt.Errorf("/proc/net/netstat: %w", err)
	}
	return t, nil
}

// ParseTCP reads the TcpExt counters from text in the format of
// /proc/net/netstat: a line of names after "TcpExt:", then a line of as
// many values. A counter this kernel lacks stays 0.
func ParseTCP(r io.Reader) (TCP, error) {
	var t TCP
	want := map[string]*uint64{
		"ListenOverflows":  &t.ListenOverflows,
		"ListenDrops":      &t.ListenDrops,
		"SyncookiesSent":   &t.SyncookiesSent,
		"SyncookiesRecv":   &t.SyncookiesRecv,
		"SyncookiesFailed": &t.SyncookiesFailed,
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxLine)
	var names []string
	line := 0
	for sc.Scan() {
		line++
		rest, ok := bytes.CutPrefix(sc.Bytes(), []byte("TcpExt:"))
		if !ok {
			continue
		}
		fields := bytes.Fields(rest)
		if names == nil {
			names = make([]string, len(fields))
			for i, f := range fields {
				names[i] = string(f)
			}
			continue
		}
		if len(fields) != len(names) {
			return t, fmt.Errorf("line %d: %d TcpExt values for %d names", line, len(fields), len(names))
		}
		for i, f := range fields {
			p := want[names[i]]
			if p == nil {
				continue
			}
			v, err := strconv.ParseUint(string(f), 10, 64)
			if err != nil {
				return t, fmt.Errorf("line %d: TcpExt %s: %q is not a count", line, names[i], f)
			}
			*p = v
		}
		return t, nil
	}
	if err := sc.Err(); err != nil {
		return t, fmt.Errorf("line %d: %w", line+1, err)
	}
	if names == nil {
		return t, fmt.Errorf("no TcpExt lines")
	}
	return t, fmt.Errorf("TcpExt names without values")
}
