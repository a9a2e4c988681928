//go:build !amd64

package detect

import "strings"

func classifyWords(s string, word, odd, digit, join []uint64) {
	classifyWordsGo(s, word, odd, digit, join)
}

func hasAVX2() bool { return false }

func asciiPrefix(s string) int { return asciiPrefixGo(s) }

func indexLit(s, lit string) int { return strings.Index(s, lit) }

func keyMasks(s string, m []uint64) { keyMasksGo(s, m) }
