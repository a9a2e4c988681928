//go:build race

package detect

// raceEnabled: sync.Pool drops items at random under the race detector, so
// allocation counts are not asserted.
const raceEnabled = true
