package detect

import (
	"cmp"
	"slices"
	"strings"
	"sync"
)

// Scanner normalises text once and runs a set of detectors over it. A Scanner
// is safe for concurrent use; its scratch buffers are pooled.
type Scanner struct {
	detectors []Detector
	spanDets  []spanDetector // detectors[k] as a spanDetector, or nil
	words     bool           // some detector works on words: tokenise once for all
	filter    wordFilter     // the words they look at on their own
	pool      sync.Pool      // *[]Finding
	scratch   sync.Pool      // *scanScratch
}

// scanScratch is what a scan uses only while it runs, pooled together (a
// pool's Get and Put cost more than they seem on a 4 KB text).
type scanScratch struct {
	norm  []byte     // the normalised text, when it differs
	spans []wordSpan // the words the filter keeps
}

// NewScanner returns a Scanner that runs detectors in order.
func NewScanner(detectors ...Detector) *Scanner {
	s := &Scanner{detectors: slices.Clone(detectors)}
	s.pool.New = func() any { b := make([]Finding, 0, 16); return &b }
	s.scratch.New = func() any { return new(scanScratch) }
	s.spanDets = make([]spanDetector, len(detectors))
	for k, d := range detectors {
		if sd, ok := d.(spanDetector); ok {
			s.words = true
			sd.addFilter(&s.filter)
			s.spanDets[k] = sd // asserted once, not per scan
		}
	}
	return s
}

// Scan normalises text and returns the findings of every detector, sorted by
// Start (then End), with offsets into Normalize(text). It returns nil when
// nothing is found.
func (s *Scanner) Scan(text string) []Finding {
	bp := s.pool.Get().(*[]Finding)
	found := s.ScanFindings((*bp)[:0], text)
	var out []Finding
	if len(found) > 0 {
		out = slices.Clone(found)
	}
	*bp = found[:0]
	s.pool.Put(bp)
	return out
}

// ScanAppend is Scan without allocation: it appends the sorted findings to
// dst and also returns the normalised text the offsets refer to, ready for
// Mask. When nothing is found the offsets refer to nothing and normalized
// may be text itself: the normalised text is built in a pooled buffer while
// the detectors run and copied out only when there are findings (prose with
// a dash to fold would otherwise allocate its length on every scan).
func (s *Scanner) ScanAppend(dst []Finding, text string) (normalized string, found []Finding) {
	return s.scan(dst, text, true)
}

// ScanFindings is ScanAppend for a caller that does not mask: it appends the
// sorted findings (offsets into Normalize(text)) to dst and never copies the
// normalised text out.
func (s *Scanner) ScanFindings(dst []Finding, text string) []Finding {
	_, found := s.scan(dst, text, false)
	return found
}

func (s *Scanner) scan(dst []Finding, text string, keepText bool) (normalized string, found []Finding) {
	if text == "" {
		// No detector finds anything in no text (a stream's empty
		// deltas): spare the pools and the walks' setup (~170 ns).
		return text, dst
	}
	sc := s.scratch.Get().(*scanScratch)
	normalized, buf, inBuf := normalizeInto(text, sc.norm[:0])
	n := len(dst)
	var words []wordSpan
	if s.words {
		words = appendWordsFiltered(normalized, sc.spans[:0], &s.filter)
	}
	for k, d := range s.detectors {
		if sd := s.spanDets[k]; sd != nil {
			dst = sd.detectSpans(normalized, words, dst)
		} else {
			dst = d.Detect(normalized, dst)
		}
	}
	sortFindings(dst[n:])
	if inBuf {
		// normalized aliases buf, which goes back to the pool.
		if keepText && len(dst) > n {
			normalized = strings.Clone(normalized)
		} else {
			normalized = text
		}
	}
	// A long prompt's buffers are used once and dropped.
	sc.norm, sc.spans = buf[:0], words[:0]
	if cap(buf) > maxPooledNorm {
		sc.norm = nil
	}
	if cap(words) > 1<<16 {
		sc.spans = nil
	}
	s.scratch.Put(sc)
	return normalized, dst
}

// maxPooledNorm bounds the normalisation buffers a Scanner keeps: a long
// prompt's is used once and dropped.
const maxPooledNorm = 1 << 20

// sortFindings orders findings by Start, then End, then Type, keeping the
// detectors' order among equal ones. Each detector's findings arrive sorted,
// one run after another: a few are put in place one by one (insertion sort),
// many with a stable merge sort, as a text of a hundred thousand addresses
// and URLs (two interleaved runs) took insertion sort seconds.
func sortFindings(f []Finding) { sortFindingsBy(f, findingCmp) }

// sortFindingsBy is sortFindings with compare for findingCmp (a test counts the
// comparisons).
func sortFindingsBy(f []Finding, compare func(a, b Finding) int) {
	if len(f) > 32 {
		slices.SortStableFunc(f, compare)
		return
	}
	for i := 1; i < len(f); i++ {
		for j := i; j > 0 && compare(f[j], f[j-1]) < 0; j-- {
			f[j], f[j-1] = f[j-1], f[j]
		}
	}
}

// findingCmp orders findings by Start, then the longer span first, then
// Type.
func findingCmp(a, b Finding) int {
	if c := cmp.Compare(a.Start, b.Start); c != 0 {
		return c
	}
	if c := cmp.Compare(b.End, a.End); c != 0 {
		return c
	}
	return strings.Compare(a.Type, b.Type)
}
