//go:build race

package guard

// holdRace: sync.Pool drops items at random under the race detector (the
// detectors' buffers come from pools), so a whole stream allocates a little
// more than the bound TestStreamGuardAllocsPerToken holds it to otherwise.
const holdRace = true
