package limit

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestWriteBans(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	bans := []Ban{
		{Prefix: netip.MustParsePrefix("203.0.113.0/24"), Until: now.Add(30 * time.Minute)},
		{Prefix: netip.MustParsePrefix("203.0.113.9/32"), Until: now.Add(time.Hour)}, // inside the /24
		{Prefix: netip.MustParsePrefix("198.51.100.7/32"), Until: now.Add(59 * time.Minute)},
		{Prefix: netip.MustParsePrefix("2001:db8:42::/48"), Until: now.Add(time.Hour)},
	}
	tests := []struct{ format, want string }{
		{"nft", `# warden guard export --format nft: 3 bans
flush set inet warden banned4
flush set inet warden banned6
add element inet warden banned4 { 198.51.100.7 timeout 3540s, 203.0.113.0/24 timeout 1800s }
add element inet warden banned6 { 2001:db8:42::/48 timeout 3600s }
`},
		{"ipset", `# warden guard export --format ipset: 3 bans; load with ipset restore -exist
create warden-banned4 hash:net family inet timeout 3600
create warden-banned6 hash:net family inet6 timeout 3600
flush warden-banned4
flush warden-banned6
add warden-banned4 198.51.100.7 timeout 3540
add warden-banned4 203.0.113.0/24 timeout 1800
add warden-banned6 2001:db8:42::/48 timeout 3600
`},
	}
	for _, tt := range tests {
		var sb strings.Builder
		if err := WriteBans(&sb, tt.format, bans, now); err != nil {
			t.Fatal(err)
		}
		if sb.String() != tt.want {
			t.Errorf("WriteBans(%s) =\n%s\nwant\n%s", tt.format, sb.String(), tt.want)
		}
	}
	var sb strings.Builder
	if err := WriteBans(&sb, "nft", nil, now); err != nil || strings.Contains(sb.String(), "add element") {
		t.Errorf("no bans: %q, %v; want only the flush lines", sb.String(), err)
	}
	if err := WriteBans(&sb, "iptables", bans, now); err == nil {
		t.Error("unknown format accepted")
	}
}
