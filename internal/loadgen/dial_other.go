//go:build !linux

package loadgen

import (
	"context"
	"syscall"
)

// dialControl is nil: the ordinary bind is used.
var dialControl func(context.Context, string, string, syscall.RawConn) error

func fileLimit() (uint64, bool) { return 0, false }
