//go:build !linux

package loadgen

import "errors"

func setRealtime(prio int) error {
	return errors.New("real-time priorities are supported on Linux only")
}

func threadsRealtime(prio int) (bool, error) { return false, errors.New("Linux only") }
