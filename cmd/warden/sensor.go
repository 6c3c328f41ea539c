package main

import (
	"fmt"
	"net/netip"

	"warden/internal/sensor"
)

// openSensor creates the SYN and kernel-drop sensor when cfg (the
// evidence.sensor keys) turns it on, and connects it to the parts
// newServer built: it counts SYNs to the HTTP tracker's and the web
// listener's ports, and datagrams to the UDP tracker's port from the
// prefixes the UDP frontend bans in its socket filters, and reports them
// to sink. It must run after the listeners are bound (their ports are
// read here) and before Run. The sensor needs CAP_NET_RAW: without it,
// warden refuses to start rather than run blind to what the operator
// asked it to see.
func (s *server) openSensor(cfg sensor.Config, sink sensor.Sink) error {
	if !cfg.Enabled {
		return nil
	}
	sens, err := sensor.New(cfg, s.log)
	if err != nil {
		return fmt.Errorf("evidence.sensor: %w", err)
	}
	var ports sensor.Ports
	if s.http != nil {
		ports.TCP = append(ports.TCP, s.http.Addr().Port())
	}
	if s.web != nil {
		ports.TCP = append(ports.TCP, s.web.Addr().Port())
	}
	if s.udp != nil {
		ports.UDP = append(ports.UDP, s.udp.Addr().Port())
	}
	if err := sens.SetPorts(ports); err != nil {
		sens.Close()
		return fmt.Errorf("evidence.sensor: %w", err)
	}
	sens.ReportTo(sink)
	s.guard.OnFilter(func(prefixes []netip.Prefix) {
		if err := sens.SetBanned(prefixes); err != nil {
			s.log.Warn("sensor: banned prefixes not counted", "err", err)
		}
	})
	s.sensor = sens
	return nil
}
