//go:build race

package guard

// raceEnabled: sync.Pool drops items at random under the race detector, so
// allocation counts are not asserted.
const raceEnabled = true
