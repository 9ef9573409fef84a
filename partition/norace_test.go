//go:build !race

package partition

// raceEnabled is true under the race detector (race_test.go).
const raceEnabled = false
