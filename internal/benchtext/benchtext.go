// Package benchtext holds the prompt text Warden's benchmarks send: one
// definition, so that warden-bench's long-context scenario and the proxy's
// handler benchmarks measure the same bytes.
package benchtext

import "strings"

// sentences read like an operations review: dates, amounts, versions and
// counts, as long-context documents hold, and no value of a PII type (the
// benchmarks run a blocking PII guard; a false positive fails them).
var sentences = [...]string{
	"The operations review for the third quarter covered capacity, incidents and the release train. ",
	"Median latency in the eu-west region fell from 212 ms to 164 ms after the cache change shipped on 2024-07-18. ",
	"Two incidents reached severity two; both were mitigated within 45 minutes and neither breached the objective. ",
	"Spend on compute rose 7.5% quarter over quarter, to $184,200, mostly from the new batch pipeline. ",
	"Version 4.12.0 of the ingestion service replaced the legacy parser; error rates dropped by a third. ",
	"The team proposes moving to a two week cadence, with a freeze during the last week of each quarter. ",
	"Customer satisfaction held at 4.3 out of 5 across 1,284 survey answers, with shipping delays the top complaint. ",
	"Headcount stays flat at 38 engineers; two open roles move to the platform group in January. ",
	"Risks: the storage vendor's contract renews in March, and the on-call rotation is thin over the holidays. ",
	"Please summarise the review in five bullet points and list every follow-up with its owner and due date.\n\n",
}

// Prose returns exactly n bytes of the sentences, repeated in order (the
// last one cut at n).
func Prose(n int) string {
	var b strings.Builder
	b.Grow(n)
	for i := 0; b.Len() < n; i++ {
		s := sentences[i%len(sentences)]
		if rest := n - b.Len(); rest < len(s) {
			s = s[:rest]
		}
		b.WriteString(s)
	}
	return b.String()
}
