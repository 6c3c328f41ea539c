package httptracker

import (
	"net/http/httptest"
	"net/netip"
	"testing"
)

func TestSourceAddr(t *testing.T) {
	proxies := []string{"10.0.0.0/8", "2001:db8:ffff::/48", "192.0.2.7"}
	const xff, real = headerXFF, headerRealIP
	tests := []struct {
		name    string
		remote  string
		trusted []string
		header  string // client_ip_header, canonical
		xff     []string
		xRealIP []string
		want    string
		wantErr string
	}{
		// No trusted proxies: headers never count.
		{name: "direct v4", remote: "203.0.113.5:40000", want: "203.0.113.5"},
		{name: "direct v6", remote: "[2001:db8::5]:40000", want: "2001:db8::5"},
		{name: "direct v4-mapped is unmapped", remote: "[::ffff:203.0.113.5]:40000", want: "203.0.113.5"},
		{name: "direct zone dropped", remote: "[fe80::1%eth0]:40000", want: "fe80::1"},
		{name: "spoofed XFF without trusted proxies", remote: "203.0.113.5:1", xff: []string{"198.51.100.1"}, want: "203.0.113.5"},
		{name: "spoofed X-Real-IP without trusted proxies", remote: "203.0.113.5:1", xRealIP: []string{"198.51.100.1"}, want: "203.0.113.5"},

		// Trusted proxies configured, but the connection is not from one.
		{name: "spoofed XFF from untrusted peer", remote: "203.0.113.5:1", trusted: proxies, header: xff,
			xff: []string{"198.51.100.1"}, want: "203.0.113.5"},
		{name: "spoofed X-Real-IP from untrusted peer", remote: "203.0.113.5:1", trusted: proxies, header: real,
			xRealIP: []string{"198.51.100.1"}, want: "203.0.113.5"},
		{name: "client claims to be a trusted proxy in XFF", remote: "203.0.113.5:1", trusted: proxies, header: xff,
			xff: []string{"198.51.100.1, 10.0.0.1"}, want: "203.0.113.5"},
		{name: "neighbour of a single trusted address", remote: "192.0.2.8:1", trusted: proxies, header: xff,
			xff: []string{"198.51.100.1"}, want: "192.0.2.8"},

		// Through a trusted proxy that sets X-Forwarded-For.
		{name: "one proxy", remote: "10.0.0.1:1", trusted: proxies, header: xff, xff: []string{"198.51.100.1"}, want: "198.51.100.1"},
		{name: "single trusted address", remote: "192.0.2.7:1", trusted: proxies, header: xff, xff: []string{"198.51.100.1"}, want: "198.51.100.1"},
		{name: "client-supplied XFF is left of the real hop", remote: "10.0.0.1:1", trusted: proxies, header: xff,
			xff: []string{"1.2.3.4, 5.6.7.8, 198.51.100.1"}, want: "198.51.100.1"},
		{name: "client claims a trusted address left of the real hop", remote: "10.0.0.1:1", trusted: proxies, header: xff,
			xff: []string{"10.9.9.9, 198.51.100.1"}, want: "198.51.100.1"},
		{name: "two trusted proxies", remote: "10.0.0.1:1", trusted: proxies, header: xff,
			xff: []string{"1.2.3.4, 198.51.100.1, 10.0.0.2"}, want: "198.51.100.1"},
		{name: "IPv6 proxy chain", remote: "[2001:db8:ffff::1]:1", trusted: proxies, header: xff,
			xff: []string{"2001:db8:1::9, 2001:db8:ffff::2"}, want: "2001:db8:1::9"},
		{name: "v4-mapped proxy matches v4 prefix", remote: "[::ffff:10.0.0.1]:1", trusted: proxies, header: xff,
			xff: []string{"198.51.100.1"}, want: "198.51.100.1"},
		{name: "v4-mapped hop is unmapped", remote: "10.0.0.1:1", trusted: proxies, header: xff,
			xff: []string{"::ffff:198.51.100.1"}, want: "198.51.100.1"},
		{name: "several XFF lines are one list", remote: "10.0.0.1:1", trusted: proxies, header: xff,
			xff: []string{"1.2.3.4", "198.51.100.1", "10.0.0.2"}, want: "198.51.100.1"},
		{name: "hop with port", remote: "10.0.0.1:1", trusted: proxies, header: xff, xff: []string{"198.51.100.1:5555"}, want: "198.51.100.1"},
		{name: "v6 hop with port", remote: "10.0.0.1:1", trusted: proxies, header: xff, xff: []string{"[2001:db8::7]:5555"}, want: "2001:db8::7"},
		{name: "spaces and empty entries", remote: "10.0.0.1:1", trusted: proxies, header: xff, xff: []string{" ,198.51.100.1 , ,"}, want: "198.51.100.1"},
		{name: "garbage left of the real hop is never read", remote: "10.0.0.1:1", trusted: proxies, header: xff,
			xff: []string{"<script>, unknown, 198.51.100.1"}, want: "198.51.100.1"},
		{name: "all hops trusted: leftmost", remote: "10.0.0.1:1", trusted: proxies, header: xff,
			xff: []string{"10.0.0.3, 10.0.0.2"}, want: "10.0.0.3"},
		{name: "X-Real-IP ignored when XFF is the header", remote: "10.0.0.1:1", trusted: proxies, header: xff,
			xff: []string{"198.51.100.1"}, xRealIP: []string{"198.51.100.2"}, want: "198.51.100.1"},

		// Through a trusted proxy that sets X-Real-IP (nginx's
		// proxy_set_header X-Real-IP $remote_addr), passing the client's
		// own X-Forwarded-For through untouched.
		{name: "X-Real-IP", remote: "10.0.0.1:1", trusted: proxies, header: real, xRealIP: []string{"198.51.100.2"}, want: "198.51.100.2"},
		{name: "client's XFF is never read when X-Real-IP is the header", remote: "10.0.0.1:1", trusted: proxies, header: real,
			xff: []string{"203.0.113.9"}, xRealIP: []string{"198.51.100.2"}, want: "198.51.100.2"},
		{name: "X-Real-IP with port", remote: "10.0.0.1:1", trusted: proxies, header: real, xRealIP: []string{"[2001:db8::7]:80"}, want: "2001:db8::7"},

		// Errors: a trusted proxy sent something we cannot use. The
		// proxy's address comes back with the error, to be charged.
		{name: "XFF missing", remote: "10.0.0.1:1", trusted: proxies, header: xff,
			xRealIP: []string{"198.51.100.2"}, want: "10.0.0.1", wantErr: "announce: x-forwarded-for: missing"},
		{name: "XFF with only empty entries", remote: "10.0.0.1:1", trusted: proxies, header: xff,
			xff: []string{" , "}, want: "10.0.0.1", wantErr: "announce: x-forwarded-for: missing"},
		{name: "garbage where the walk stops", remote: "10.0.0.1:1", trusted: proxies, header: xff,
			xff: []string{"198.51.100.1, unknown"}, want: "10.0.0.1", wantErr: "announce: x-forwarded-for: invalid address"},
		{name: "hop with zone", remote: "10.0.0.1:1", trusted: proxies, header: xff,
			xff: []string{"fe80::1%eth0"}, want: "10.0.0.1", wantErr: "announce: x-forwarded-for: invalid address"},
		{name: "X-Real-IP missing, the client's XFF is not a fallback", remote: "10.0.0.1:1", trusted: proxies, header: real,
			xff: []string{"203.0.113.9"}, want: "10.0.0.1", wantErr: "announce: x-real-ip: missing"},
		{name: "bad X-Real-IP", remote: "10.0.0.1:1", trusted: proxies, header: real,
			xRealIP: []string{"198.51.100.1, 198.51.100.2"}, want: "10.0.0.1", wantErr: "announce: x-real-ip: invalid address"},
		{name: "repeated X-Real-IP", remote: "[::ffff:10.0.0.1]:1", trusted: proxies, header: real,
			xRealIP: []string{"198.51.100.1", "198.51.100.2"}, want: "10.0.0.1", wantErr: "announce: x-real-ip: given more than once"},
		{name: "RemoteAddr not ip:port", remote: "@unix", wantErr: errRemoteAddr.Error()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			trusted, err := parseTrusted(tt.trusted)
			if err != nil {
				t.Fatal(err)
			}
			r := httptest.NewRequest("GET", "/announce", nil)
			r.RemoteAddr = tt.remote
			for _, v := range tt.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			for _, v := range tt.xRealIP {
				r.Header.Add("X-Real-IP", v)
			}
			got, err := sourceAddr(r, trusted, tt.header)
			gotErr := ""
			if err != nil {
				gotErr = err.Error()
			}
			var want netip.Addr
			if tt.want != "" {
				want = netip.MustParseAddr(tt.want)
			}
			if got != want || gotErr != tt.wantErr {
				t.Errorf("sourceAddr(%s, %s, XFF %q, X-Real-IP %q) = %v, %q; want %v, %q",
					tt.remote, tt.header, tt.xff, tt.xRealIP, got, gotErr, want, tt.wantErr)
			}
		})
	}
}

func TestSourceAddrAllocs(t *testing.T) {
	trusted, _ := parseTrusted([]string{"10.0.0.0/8"})
	r := httptest.NewRequest("GET", "/announce", nil)
	r.RemoteAddr = "10.0.0.1:1234"
	r.Header.Add("X-Forwarded-For", "1.2.3.4, 198.51.100.1, 10.0.0.2")
	if n := testing.AllocsPerRun(100, func() {
		if _, err := sourceAddr(r, trusted, headerXFF); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("sourceAddr through a proxy allocates %v times, want 0", n)
	}
}
