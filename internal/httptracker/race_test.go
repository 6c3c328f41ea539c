//go:build race

package httptracker

const raceEnabled = true
