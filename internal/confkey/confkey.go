// Package confkey is the one error type for a configuration value that
// cannot work. It names the value by the key the operator wrote
// ("udp.workers" in the config file, "--rate" on a command line), because
// that is what they must go and change; the Go package that checked it is
// of no use to them.
//
// Each package's Validate names its own keys ("workers"); the composing
// config prefixes the section with In. Nothing here knows a key.
package confkey

import "fmt"

// Error is a configuration value Validate rejected. Match it with
// errors.As.
type Error struct {
	Key string // as the operator writes it: "udp.workers", "--rate"
	Msg string // what is wrong: "must be 1-1024, got 0"
}

func (e *Error) Error() string { return e.Key + ": " + e.Msg }

// Errorf returns an *Error for key with a message formatted as by
// fmt.Sprintf.
func Errorf(key, format string, args ...any) error {
	return &Error{Key: key, Msg: fmt.Sprintf(format, args...)}
}

// In places err under section: an *Error's key becomes section.key, so
// "workers" checked by the UDP frontend reads "udp.workers" in the file.
// Any other error, an *Error wrapped in context included, is wrapped as
// "section: err", still matchable with errors.Is and errors.As. In returns nil for a nil err, so a caller can
// write confkey.In("udp", c.UDP.Validate()). It does not change err.
func In(section string, err error) error {
	if err == nil {
		return nil
	}
	if e, ok := err.(*Error); ok {
		return &Error{Key: section + "." + e.Key, Msg: e.Msg}
	}
	return fmt.Errorf("%s: %w", section, err)
}
