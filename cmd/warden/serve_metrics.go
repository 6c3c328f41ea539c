package main

import (
	"net/http"

	"warden/internal/metrics"
)

// metrics returns the /metrics handler of the admin API: it reads the
// status snapshot, the guard's tables and the kernel's counters of the
// UDP port at each scrape.
func (s *server) metrics() http.Handler {
	src := metrics.Sources{Status: s.status, Guard: s.guard}
	if s.udp != nil {
		src.UDPPorts = []uint16{s.udp.Addr().Port()}
	}
	return metrics.Handler(src, s.log)
}
