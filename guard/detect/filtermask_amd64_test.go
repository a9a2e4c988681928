package detect

import "testing"

// TestRunBytes holds the assembly's table of word byte masks to the bits
// it is indexed by: for 8 word bits b from a word's start, the bytes of
// the run of 1 bits b starts with (min(length, 8)), 0x20 cleared in each.
func TestRunBytes(t *testing.T) {
	for b := range 256 {
		var want uint64
		for j := 0; j < 8 && b>>j&1 == 1; j++ {
			want |= 0xdf << (8 * j)
		}
		if runBytes[b] != want {
			t.Errorf("runBytes[%08b] = %016x, want %016x", b, runBytes[b], want)
		}
	}
}
