package detect

import (
	"slices"
	"strings"
)

// Mask returns normText with every finding's span replaced by "{TYPE}", as
// Bedrock Guardrails' ANONYMIZE action does. Overlapping or touching spans are
// merged into one placeholder named after the finding that starts first (the
// longest one on a tie). Findings outside the text are clipped to it. normText
// must be the normalised text the findings' offsets refer to.
func Mask(normText string, findings []Finding) string {
	if len(findings) == 0 {
		return normText
	}
	f := slices.Clone(findings)
	sortFindings(f)
	var b strings.Builder
	b.Grow(len(normText))
	pos := 0
	for i := 0; i < len(f); {
		start, end, typ := clip(f[i].Start, len(normText)), clip(f[i].End, len(normText)), f[i].Type
		i++
		for i < len(f) && clip(f[i].Start, len(normText)) <= end {
			end = max(end, clip(f[i].End, len(normText)))
			i++
		}
		if end <= start {
			continue
		}
		start = max(start, pos)
		b.WriteString(normText[pos:start])
		b.WriteByte('{')
		b.WriteString(typ)
		b.WriteByte('}')
		pos = end
	}
	b.WriteString(normText[pos:])
	return b.String()
}

func clip(v, n int) int { return max(0, min(v, n)) }
