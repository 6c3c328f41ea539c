//go:build !linux

package sensor

import (
	"context"
	"log/slog"
	"net/netip"
)

// blockBytes is the ring's block size on Linux; Config's limits use it.
const blockBytes = 64 << 10

// Sensor cannot be created outside Linux: New returns ErrNotSupported.
type Sensor struct{}

// New returns ErrNotSupported once cfg is valid.
func New(cfg Config, log *slog.Logger) (*Sensor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return nil, ErrNotSupported
}

func (s *Sensor) ReportTo(sink Sink)                      {}
func (s *Sensor) SetPorts(p Ports) error                  { return ErrNotSupported }
func (s *Sensor) SetBanned(prefixes []netip.Prefix) error { return ErrNotSupported }
func (s *Sensor) Run(ctx context.Context) error           { return ErrNotSupported }
func (s *Sensor) Close() error                            { return nil }
func (s *Sensor) Stats() Stats                            { return Stats{} }
