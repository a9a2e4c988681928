//go:build !race

package guard

const holdRace = false
