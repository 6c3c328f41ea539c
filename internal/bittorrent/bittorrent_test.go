package bittorrent

import (
	"bytes"
	"net/netip"
	"testing"
)

func TestCompactPeers(t *testing.T) {
	tests := []struct {
		name  string
		v6    bool
		in    []string
		want  []string // what the list holds afterwards
		bytes []byte   // the wire form
	}{
		{
			name:  "ipv4",
			in:    []string{"10.0.0.1:6881", "192.0.2.7:1"},
			want:  []string{"10.0.0.1:6881", "192.0.2.7:1"},
			bytes: []byte{10, 0, 0, 1, 0x1a, 0xe1, 192, 0, 2, 7, 0, 1},
		},
		{
			name:  "mapped ipv4 counts as ipv4",
			in:    []string{"[::ffff:10.0.0.1]:6881"},
			want:  []string{"10.0.0.1:6881"},
			bytes: []byte{10, 0, 0, 1, 0x1a, 0xe1},
		},
		{
			name: "ipv6 skipped in an ipv4 list",
			in:   []string{"[2001:db8::1]:6881"},
		},
		{
			name:  "ipv6",
			v6:    true,
			in:    []string{"[2001:db8::1]:65535", "10.0.0.1:6881"},
			want:  []string{"[2001:db8::1]:65535"},
			bytes: []byte{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0xff},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p CompactPeers
			p.Bytes = []byte("left over") // Reset must empty it
			p.Reset(tt.v6)
			for _, s := range tt.in {
				ap := netip.MustParseAddrPort(s)
				ok := p.Append(ap)
				if wantOK := ap.Addr().Unmap().Is6() == tt.v6; ok != wantOK {
					t.Errorf("Append(%s) = %v, want %v", s, ok, wantOK)
				}
			}
			if !bytes.Equal(p.Bytes, tt.bytes) && len(p.Bytes)+len(tt.bytes) > 0 {
				t.Errorf("Bytes = %v, want %v", p.Bytes, tt.bytes)
			}
			if p.Len() != len(tt.want) {
				t.Fatalf("Len() = %d, want %d", p.Len(), len(tt.want))
			}
			for i, ap := range p.All() {
				if ap.String() != tt.want[i] {
					t.Errorf("All()[%d] = %s, want %s", i, ap, tt.want[i])
				}
			}
		})
	}
}

func TestEventString(t *testing.T) {
	for e, want := range map[Event]string{
		EventNone: "none", EventCompleted: "completed", EventStarted: "started", EventStopped: "stopped", 9: "event(9)",
	} {
		if got := e.String(); got != want {
			t.Errorf("Event(%d).String() = %q, want %q", uint8(e), got, want)
		}
	}
}
