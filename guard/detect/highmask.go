package detect

// highMasksGo is the plain form of highMasks: bit j of m[k] is set when byte
// 64k+j of s is 0x80 or above (a byte of a multi-byte UTF-8 sequence, or an
// invalid one).
func highMasksGo(s string, m []uint64) {
	for k := range m {
		blk := s[64*k : 64*k+64]
		var or uint64
		for j := 0; j < 64; j += 8 {
			or |= load64(blk, j)
		}
		if or&msb == 0 {
			m[k] = 0
			continue
		}
		var x uint64
		for j := 0; j < 64; j += 8 {
			// The sign bit of each byte, gathered into the top byte.
			b := load64(blk, j) & msb
			x |= ((b >> 7) * 0x0102040810204080 >> 56) << j
		}
		m[k] = x
	}
}

// highTail is highMasksGo for the last block of a text, shorter than 64
// bytes.
func highTail(s string) uint64 {
	var x uint64
	for j := range len(s) {
		if s[j] >= 0x80 {
			x |= 1 << j
		}
	}
	return x
}
