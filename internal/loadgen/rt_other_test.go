//go:build !linux

package loadgen

func canRealtime() error { return setRealtime(1) }
