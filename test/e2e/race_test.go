//go:build race

package e2e

// The test binary was built with -race, so warden is too.
func init() { raceEnabled = true }
