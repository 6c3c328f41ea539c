package procstat

import (
	"net"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// udpTable is /proc/net/udp as Linux 6.1 writes it: 127.0.0.1:20157 with
// 3 datagrams dropped and 0x300 bytes queued, and another port.
const udpTable = `   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops            
 1080: 0100007F:4EBD 00000000:0000 07 00000000:00000300 00:00000000 00000000     0        0 10477909 2 000000002eab9cde 3      
 1305: 0100007F:4F9E 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 10479714 2 000000006c83f155 9      
`

// udp6Table is /proc/net/udp6 with [::1]:20157.
const udp6Table = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  381: 00000000000000000000000001000000:4EBD 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 10470001 2 0000000000000000 5
`

func TestParseUDP(t *testing.T) {
	tests := []struct {
		name    string
		table   string
		ports   []uint16
		want    UDP
		wantErr string
	}{
		{name: "one port", table: udpTable, ports: []uint16{0x4EBD}, want: UDP{Sockets: 1, Drops: 3, RxQueueBytes: 0x300}},
		{name: "both ports", table: udpTable, ports: []uint16{0x4EBD, 0x4F9E}, want: UDP{Sockets: 2, Drops: 12, RxQueueBytes: 0x300}},
		{name: "no port", table: udpTable, ports: nil},
		{name: "ipv6", table: udp6Table, ports: []uint16{0x4EBD}, want: UDP{Sockets: 1, Drops: 5}},
		{name: "header only", table: strings.SplitAfter(udpTable, "\n")[0]},
		{name: "empty", table: "", wantErr: "empty"},
		{name: "not a table", table: "hello\n", wantErr: "line 1: not the header"},
		{name: "short line", table: strings.SplitAfter(udpTable, "\n")[0] + " 1: 0100007F:4EBD 0\n", ports: []uint16{1}, wantErr: "line 2: 3 fields"},
		{name: "bad port", table: strings.Replace(udpTable, ":4EBD", ":4XBD", 1), wantErr: "line 2: local port"},
		{name: "bad drops", table: strings.Replace(udpTable, "2eab9cde 3", "2eab9cde x", 1), ports: []uint16{0x4EBD}, wantErr: "line 2: drops"},
		{name: "line too long", table: strings.SplitAfter(udpTable, "\n")[0] + strings.Repeat("x", maxLine+1), wantErr: "line 2: bufio.Scanner: token too long"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got UDP
			err := ParseUDP(strings.NewReader(tt.table), tt.ports, &got)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseUDP = %v, want error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseUDP = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

const netstat = `TcpExt: SyncookiesSent SyncookiesRecv SyncookiesFailed EmbryonicRsts ListenOverflows ListenDrops
TcpExt: 7 5 2 530000 11 13
IpExt: InNoRoutes InTruncatedPkts
IpExt: 0 0
`

func TestParseTCP(t *testing.T) {
	tests := []struct {
		name, text string
		want       TCP
		wantErr    string
	}{
		{name: "linux", text: netstat, want: TCP{ListenOverflows: 11, ListenDrops: 13, SyncookiesSent: 7, SyncookiesRecv: 5, SyncookiesFailed: 2}},
		{name: "counter missing", text: "TcpExt: ListenDrops\nTcpExt: 4\n", want: TCP{ListenDrops: 4}},
		{name: "no TcpExt", text: "IpExt: A\nIpExt: 1\n", wantErr: "no TcpExt lines"},
		{name: "names only", text: "TcpExt: A B\n", wantErr: "without values"},
		{name: "out of step", text: "TcpExt: A B\nTcpExt: 1\n", wantErr: "line 2: 1 TcpExt values for 2 names"},
		{name: "not a count", text: "TcpExt: ListenDrops\nTcpExt: -1\n", wantErr: `ListenDrops: "-1" is not a count`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseTCP(strings.NewReader(tt.text))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseTCP = %v, want error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseTCP = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

// TestReadUDPCountsRealDrops fills a real loopback socket's receive
// buffer and checks that ReadUDP sees the kernel's drops on its port.
func TestReadUDPCountsRealDrops(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the kernel's tables are Linux's")
	}
	rc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if err := rc.SetReadBuffer(4096); err != nil { // the kernel's minimum, a few datagrams
		t.Fatal(err)
	}
	port := uint16(rc.LocalAddr().(*net.UDPAddr).Port)
	sc, err := net.DialUDP("udp4", nil, rc.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	pkt := make([]byte, 512)
	deadline := time.Now().Add(5 * time.Second)
	for i := 0; i < 100_000 && time.Now().Before(deadline); i++ { // bounded: stops at the first drops seen
		sc.Write(pkt)
		if i%100 != 99 {
			continue
		}
		u, err := ReadUDP([]uint16{port})
		if err != nil {
			t.Fatal(err)
		}
		if u.Sockets != 1 {
			t.Fatalf("ReadUDP(%d) found %d sockets, want 1", port, u.Sockets)
		}
		if u.Drops > 0 {
			if u.RxQueueBytes == 0 {
				t.Errorf("drops %d with an empty receive queue", u.Drops)
			}
			return
		}
	}
	t.Fatal("no drops seen on a full 4 KiB receive buffer")
}

func TestReadTCP(t *testing.T) {
	if _, err := os.Stat("/proc/net/netstat"); err != nil {
		t.Skip("no /proc/net/netstat:", err)
	}
	if _, err := ReadTCP(); err != nil {
		t.Fatalf("ReadTCP: %v", err)
	}
}

func FuzzParseUDP(f *testing.F) {
	f.Add(udpTable)                                                                     // Linux 6.1, two sockets
	f.Add(udp6Table)                                                                    // IPv6
	f.Add("")                                                                           // empty
	f.Add(strings.SplitAfter(udpTable, "\n")[0] + "1: :4EBD a b c:d e f g h i j k l\n") // fields of the right count, wrong content
	f.Fuzz(func(t *testing.T, s string) {
		var u UDP
		err := ParseUDP(strings.NewReader(s), []uint16{0x4EBD}, &u)
		if err == nil && u.Sockets > strings.Count(s, "\n")+1 {
			t.Fatalf("%d sockets from %d lines", u.Sockets, strings.Count(s, "\n")+1)
		}
	})
}

func FuzzParseTCP(f *testing.F) {
	f.Add(netstat)                                          // Linux 6.1, abridged
	f.Add("TcpExt: A\nTcpExt: 1 2\n")                       // out of step
	f.Add("TcpExt: ListenDrops ListenDrops\nTcpExt: 1 2\n") // a name twice: the last wins
	f.Fuzz(func(t *testing.T, s string) {
		ParseTCP(strings.NewReader(s)) // no panic, bounded lines
	})
}
