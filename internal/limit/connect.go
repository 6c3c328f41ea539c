package limit

// connectConfig is the Config of the connect limiter: the connect rate
// for each address, in ConnectTableBytes, and no bans (the one ban
// record New insists on is never used).
func (c Config) connectConfig() Config {
	cc := c
	cc.RatePerSec, cc.Burst = c.ConnectRatePerSec, c.ConnectBurst
	cc.PrefixRatePerSec, cc.PrefixBurst = c.ConnectRatePerSec, c.ConnectBurst
	cc.TableBytes = c.ConnectTableBytes
	cc.BanAfter = 0
	cc.MaxBans = 1
	return cc
}

// newConnectLimiter returns the Limiter for UDP connects: one bucket per
// address and none per prefix, so that forged connects in a victim's
// name can hold back that address's connects but no one else's. The
// error is newLimiter's.
func newConnectLimiter(cfg Config) (*Limiter, error) {
	l, err := newLimiter(cfg.connectConfig(), "connect_table_bytes")
	if err != nil {
		return nil, err
	}
	// With the prefix levels the same as the address levels (same seeds,
	// same masks), a source's two keys are one key in one way: decideLocked
	// charges it once and Allow takes a single lock.
	l.lv[v4Prefix] = l.lv[v4Addr]
	l.lv[v6Prefix] = l.lv[v6Addr]
	return l, nil
}
