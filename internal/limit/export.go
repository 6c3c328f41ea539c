package limit

import (
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// ExportFormats are the formats WriteBans knows.
var ExportFormats = []string{"nft", "ipset"}

// WriteBans writes bans as a script that loads them into the kernel, so a
// banned source is dropped before it reaches the process:
//
//   - nft: flushes and refills the sets banned4 and banned6 of table inet
//     warden (see docs/deploy.md) in one `nft -f` transaction, each ban
//     with its remaining time as timeout.
//   - ipset: `ipset restore` input for the hash:net sets warden-banned4 and
//     warden-banned6, created if missing and flushed first.
//
// A ban inside another (an address within a banned prefix) is left out:
// interval sets refuse overlapping elements.
func WriteBans(w io.Writer, format string, bans []Ban, now time.Time) error {
	var v4, v6 []Ban
	for _, b := range outermost(bans) {
		if b.Prefix.Addr().Is4() {
			v4 = append(v4, b)
		} else {
			v6 = append(v6, b)
		}
	}
	timeout := func(b Ban) int64 {
		return max(1, int64(b.Until.Sub(now).Round(time.Second)/time.Second))
	}
	var sb strings.Builder
	switch format {
	case "nft":
		fmt.Fprintf(&sb, "# warden guard export --format nft: %d bans\n", len(v4)+len(v6))
		sb.WriteString("flush set inet warden banned4\nflush set inet warden banned6\n")
		for _, set := range []struct {
			name string
			bans []Ban
		}{{"banned4", v4}, {"banned6", v6}} {
			if len(set.bans) == 0 {
				continue
			}
			elems := make([]string, len(set.bans))
			for i, b := range set.bans {
				elems[i] = fmt.Sprintf("%s timeout %ds", element(b.Prefix), timeout(b))
			}
			fmt.Fprintf(&sb, "add element inet warden %s { %s }\n", set.name, strings.Join(elems, ", "))
		}
	case "ipset":
		fmt.Fprintf(&sb, "# warden guard export --format ipset: %d bans; load with ipset restore -exist\n", len(v4)+len(v6))
		sb.WriteString("create warden-banned4 hash:net family inet timeout 3600\n")
		sb.WriteString("create warden-banned6 hash:net family inet6 timeout 3600\n")
		sb.WriteString("flush warden-banned4\nflush warden-banned6\n")
		for _, b := range v4 {
			fmt.Fprintf(&sb, "add warden-banned4 %s timeout %d\n", element(b.Prefix), timeout(b))
		}
		for _, b := range v6 {
			fmt.Fprintf(&sb, "add warden-banned6 %s timeout %d\n", element(b.Prefix), timeout(b))
		}
	default:
		return fmt.Errorf("export format %q: want one of %s", format, strings.Join(ExportFormats, ", "))
	}
	_, err := io.WriteString(w, sb.String())
	return err
}

// element writes a single address without its /32 or /128.
func element(p netip.Prefix) string {
	if p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.String()
}

// outermost drops bans contained in another ban, sorted by address.
func outermost(bans []Ban) []Ban {
	bs := slices.Clone(bans)
	slices.SortFunc(bs, func(a, b Ban) int {
		if c := a.Prefix.Addr().Compare(b.Prefix.Addr()); c != 0 {
			return c
		}
		return a.Prefix.Bits() - b.Prefix.Bits()
	})
	var out []Ban
	for _, b := range bs {
		if n := len(out); n > 0 && out[n-1].Prefix.Overlaps(b.Prefix) && out[n-1].Prefix.Bits() <= b.Prefix.Bits() {
			continue
		}
		out = append(out, b)
	}
	return out
}
