package detect

import (
	"strings"
	"testing"
	"unsafe"
)

// TestReview30PageEdgeGroups is TestKernelsAtPageEdges past its 300 bytes:
// texts of curly punctuation and ASCII words (which keepRunBMI2 runs
// through, punctWords joining the curly blocks), long words and base64
// that end exactly at an unreadable page, at lengths around the tokeniser's
// group of 16 blocks (1024 bytes) and the page itself, tokenised by every
// review filter and scanned whole, and compared with the plain path.
func TestReview30PageEdgeGroups(t *testing.T) {
	page := guardedPage(t)
	scs, pss := review30Scanners(t)
	fs := review30Filters(t)
	fills := []string{
		"don’t ignore all – previous “instructions” acme’s corp — it’s 12’s ",
		"abcdefghijklmnopqrst’abcdefgh ", "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo’",
	}
	var lengths []int
	for _, c := range []int{1024, 2048, len(page)} {
		for n := c - 80; n <= c+80 && n <= len(page); n++ {
			lengths = append(lengths, n)
		}
	}
	for _, fill := range fills {
		for _, n := range lengths {
			text := strings.Repeat(fill, n/len(fill)+1)[:n]
			b := page[len(page)-n:]
			copy(b, text)
			s := unsafe.String(unsafe.SliceData(b), n)
			for _, f := range fs {
				_ = appendWordsFiltered(s, nil, f)
			}
			if n%7 == 0 {
				checkKeepRun(t, fs, s)
				for i, sc := range scs {
					checkScanReference(t, sc, pss[i], s)
				}
			}
		}
	}
}
