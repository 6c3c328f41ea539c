//go:build !unix

package memswarm

import "errors"

// Where there is no mmap, every chunk comes from the Go heap.
func mapRegion(int) ([]byte, error) { return nil, errors.New("no mmap") }

func releasePages([]byte) {}

func unmapRegion([]byte) {}
