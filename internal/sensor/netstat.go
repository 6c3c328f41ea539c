package sensor

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"
)

// TCPCounters are the kernel's counters of what it did with connection
// attempts in warden's network namespace (all ports, since boot or the
// namespace's creation), from the TcpExt lines of /proc/net/netstat.
type TCPCounters struct {
	// SyncookiesSent counts SYNs answered with a SYN cookie because a
	// listen queue was full: a SYN flood, or more honest clients than the
	// backlog holds. SyncookiesRecv counts cookies that came back valid
	// (completed handshakes), SyncookiesFailed those that did not.
	SyncookiesSent   uint64 `json:"syncookies_sent"`
	SyncookiesRecv   uint64 `json:"syncookies_recv"`
	SyncookiesFailed uint64 `json:"syncookies_failed"`
	// ListenOverflows counts completed handshakes dropped because an
	// accept queue was full; ListenDrops every SYN or handshake a
	// listener dropped, overflows included.
	ListenOverflows uint64 `json:"listen_overflows"`
	ListenDrops     uint64 `json:"listen_drops"`
}

// netstatPath is the kernel's file; tests read their own.
const netstatPath = "/proc/net/netstat"

// maxNetstatBytes bounds what is read of the file (about 4 KiB on 6.x).
const maxNetstatBytes = 1 << 20

// readTCPCounters reads path as /proc/net/netstat.
func readTCPCounters(path string) (TCPCounters, error) {
	f, err := os.Open(path)
	if err != nil {
		return TCPCounters{}, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxNetstatBytes))
	if err != nil {
		return TCPCounters{}, fmt.Errorf("read %s: %w", path, err)
	}
	c, err := parseNetstat(data)
	if err != nil {
		return TCPCounters{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// parseNetstat reads the TcpExt counters out of the text of
// /proc/net/netstat: pairs of lines, the first naming the counters of a
// group ("TcpExt: SyncookiesSent ..."), the second giving their values
// in the same order. A counter the kernel does not have stays 0; the
// TcpExt lines missing or out of step are an error.
func parseNetstat(data []byte) (TCPCounters, error) {
	var c TCPCounters
	fields := map[string]*uint64{
		"SyncookiesSent":   &c.SyncookiesSent,
		"SyncookiesRecv":   &c.SyncookiesRecv,
		"SyncookiesFailed": &c.SyncookiesFailed,
		"ListenOverflows":  &c.ListenOverflows,
		"ListenDrops":      &c.ListenDrops,
	}
	prefix := []byte("TcpExt:")
	var names [][]byte
	for line := range bytes.Lines(data) {
		rest, ok := bytes.CutPrefix(line, prefix)
		if !ok {
			continue
		}
		words := bytes.Fields(rest)
		if names == nil {
			names = words
			if names == nil {
				names = [][]byte{}
			}
			continue
		}
		if len(words) != len(names) {
			return c, fmt.Errorf("TcpExt: %d names but %d values", len(names), len(words))
		}
		for i, w := range words {
			p := fields[string(names[i])]
			if p == nil {
				continue
			}
			v, err := strconv.ParseUint(string(w), 10, 64)
			if err != nil {
				return c, fmt.Errorf("TcpExt: %s: %q is not a count", names[i], w)
			}
			*p = v
		}
		return c, nil
	}
	return c, fmt.Errorf("no TcpExt counters")
}
