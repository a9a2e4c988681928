package benchtext

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestProse(t *testing.T) {
	for _, n := range []int{0, 1, 95, 1000, 64 << 10} {
		p := Prose(n)
		if len(p) != n {
			t.Errorf("Prose(%d) is %d bytes", n, len(p))
		}
		if !utf8.ValidString(p) {
			t.Errorf("Prose(%d) is not UTF-8", n)
		}
		if n >= 1000 && !strings.HasPrefix(p, sentences[0]+sentences[1]) {
			t.Errorf("Prose(%d) does not start with the sentences in order", n)
		}
	}
}
