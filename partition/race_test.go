//go:build race

package partition

// raceEnabled is true under the race detector, which makes sync.Pool
// drop what it holds at random: a test of allocations then measures that.
const raceEnabled = true
