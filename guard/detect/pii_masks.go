package detect

import (
	"math/bits"
	"unsafe"
)

// Trigger bitmaps: detectWords asks nextTrigger for the next byte that may
// lie in a number- or code-shaped value (see isTrigger). On prose most of
// the bytes nextTrigger hands to isTrigger are none: sentence-ending
// periods, hyphens in words, dates, amounts and other short numbers. A
// triggerScan reads the text 64 bytes at a time into bitmaps of byte
// classes (piiMasks, AVX2 where the CPU has it) and computes from them, with
// bit arithmetic, the positions that can be triggers; isTrigger decides on
// those alone. TestTriggerScan and FuzzTriggerScan hold it to nextTrigger.

// piiBlock holds, for one 64-byte block of text, a bit per byte of each
// class. The field order is the layout the kernels write. The last six
// classes are rare in prose: the kernel tests a block for any of their
// bytes at once and computes them only when it has one.
type piiBlock struct {
	digit uint64 // 0-9
	alnum uint64 // letters, digits
	dot   uint64 // '.'
	dash  uint64 // '-'
	space uint64 // ' '
	wfold uint64 // 'w' 'W'
	colon uint64 // ':'
	plus  uint64 // '+'
	under uint64 // '_'
	slash uint64 // '/'
	gx    uint64 // the other group separators: tab, _ / ( ) (see grp)
	at    uint64 // '@'
}

// grp returns the bitmap of group separators: space, tab, - . _ / ( )
// (groupSep).
func (b *piiBlock) grp() uint64 { return b.space | b.dash | b.dot | b.gx }

// piiMasksGo sets m[b] to the classes of the 64-byte block b of s, eight
// bytes at a time. Bytes of 0x80 and above are in no class.
func piiMasksGo(s string, m []piiBlock) {
	pack := func(k uint64) uint64 { return (k >> 7) * 0x0102040810204080 >> 56 }
	for b := range m {
		var o piiBlock
		for c := 0; c < 64; c += 8 {
			x := load64(s, 64*b+c)
			digit := inRange(x, '0', '9')
			folded := x | lsb*0x20
			alpha := inRange(folded, 'a', 'z')
			under, slash := eqByte(x, '_'), eqByte(x, '/')
			o.digit |= pack(digit) << c
			o.alnum |= pack(digit|alpha) << c
			o.dot |= pack(eqByte(x, '.')) << c
			o.dash |= pack(eqByte(x, '-')) << c
			o.space |= pack(eqByte(x, ' ')) << c
			o.wfold |= pack(eqByte(folded, 'w')) << c
			o.colon |= pack(eqByte(x, ':')) << c
			o.plus |= pack(eqByte(x, '+')) << c
			o.under |= pack(under) << c
			o.slash |= pack(slash) << c
			o.gx |= pack(eqByte(x, '\t')|under|slash|eqByte(x, '(')|eqByte(x, ')')) << c
			o.at |= pack(eqByte(x, '@')) << c
		}
		m[b] = o
	}
}

// trigChunk is how many blocks a triggerScan classifies at a time.
const trigChunk = 32

// triggerScan finds triggers in s a chunk of blocks at a time.
type triggerScan struct {
	trigState
	trigBufs
}

// trigBufs are a triggerScan's per-chunk bitmaps, most of its size: only
// their parts for the chunk loaded mean anything (m[:nb+2], sure[:nb],
// maybe[:nb], cv's first nb), and load writes those before they are
// read, so a triggerScan may be reused without clearing them (PII.scans).
type trigBufs struct {
	// m[1:nb+1] are the chunk's blocks, m[0] the one before it and
	// m[nb+1] the one after (zero beyond the text).
	m     [trigChunk + 2]piiBlock
	sure  [trigChunk]uint64 // the positions that are triggers with back 1
	maybe [trigChunk]uint64 // the other positions that may be triggers
	cv    candVec           // the chunk's other bitmaps, where piiCands computes them
}

// trigState is the rest of a triggerScan: zero for a new text.
type trigState struct {
	s    string
	base int    // the text offset of the chunk's first block
	nb   int    // blocks in the chunk
	has  uint64 // bit b: sure[b] or maybe[b] is not zero

	// What the other PII searches need, gathered from the same bitmaps as
	// the chunks are classified (every block once, in order; see next).
	keyRun       int  // key characters at the end of the text so far
	key20, key40 bool // a run of 20 (40) key characters seen (keyRunAtLeast)
	// The positions of "://", "www." and "WWW." (marks), in order, unless
	// there were more than fit (marksOver).
	marks     markIndex
	marksOver bool
	// The positions of '@' (for the email search), unless there were
	// more than fit (atsOver).
	ats     [maxAts]int32
	nAts    int
	atsOver bool
}

// newTriggerScan returns a triggerScan for s with its buffers zero (tests;
// PII.triggerScan reuses them).
func newTriggerScan(s string) *triggerScan {
	return &triggerScan{trigState: trigState{s: s}}
}

// maxAts is how many '@' positions a triggerScan keeps.
const maxAts = 32

// maxMarks is how many URL markers a triggerScan keeps.
const maxMarks = 32

// markIndex lists the URL markers of a text in order: kind 0 for "://",
// 1 for "www.", 2 for "WWW.".
type markIndex struct {
	pos  [maxMarks]int32
	kind [maxMarks]uint8
	n    int
	cur  [3]int // per kind, where index looks from
}

var markLits = [3]string{"://", "www.", "WWW."}

// index returns the first position at or after off of the marker lit (one
// of markLits), or -1. Calls for one marker must not move off back.
func (m *markIndex) index(off int, lit string) int {
	k := 0
	for k < len(markLits) && markLits[k] != lit {
		k++
	}
	return m.indexKind(off, k)
}

// indexKind is index for the marker markLits[k].
func (m *markIndex) indexKind(off, k int) int {
	for j := m.cur[k]; j < m.n; j++ {
		if m.kind[j] == uint8(k) && int(m.pos[j]) >= off {
			m.cur[k] = j
			return int(m.pos[j])
		}
	}
	m.cur[k] = m.n
	return -1
}

// masksAt sets m to the classes of the blocks from block b on, the last
// one of the text padded with zero bytes (which are in no class, as the
// end of the text is in none), and zero beyond the text.
func (ts *triggerScan) masksAt(b int, m []piiBlock) {
	s := ts.s
	full := min(len(m), max(0, len(s)/64-b))
	if full > 0 {
		piiMasks(s[64*b:64*(b+full)], m[:full])
	}
	rest := m[full:]
	if len(rest) == 0 {
		return
	}
	if off := 64 * (b + full); off < len(s) && off >= 0 {
		var pad [64]byte
		copy(pad[:], s[off:])
		piiMasks(unsafe.String(&pad[0], len(pad)), rest[:1])
		rest = rest[1:]
	}
	clear(rest)
}

// load classifies the chunk that starts at block cb and computes its
// candidates.
func (ts *triggerScan) load(cb int) {
	n := len(ts.s)
	nb := min(trigChunk, (n-64*cb+63)/64)
	if ts.nb > 0 && cb == ts.base/64+ts.nb {
		// The next chunk: its block before and first block are known.
		ts.m[0], ts.m[1] = ts.m[ts.nb], ts.m[ts.nb+1]
		ts.masksAt(cb+1, ts.m[2:nb+2])
	} else if cb == 0 {
		ts.m[0] = piiBlock{}
		ts.masksAt(0, ts.m[1:nb+2])
	} else {
		ts.masksAt(cb-1, ts.m[:nb+2])
	}
	ts.base, ts.nb = 64*cb, nb
	if hasPIICands && nb >= minCandsVec {
		ts.candsVec()
		return
	}
	// The loop below, with no call in it, is most of a prose scan: it
	// gathers the key runs, the blocks with URL markers, and per block
	// the digit run starts (in sure) and the separators (in maybe) the
	// candidates come from; the blocks that have any are then
	// passed to startBits and startCands, and sepCands.
	keyRun, key20, key40 := ts.keyRun, ts.key20, ts.key40
	var work, marked uint64 // bit b-1: block b has candidates, markers
	m := &ts.m
	for b := 1; b <= nb; b++ {
		pv, cu, nx := &m[b-1], &m[b], &m[b+1]
		// A ':' or the first '-' or '.' of a MAC address after a letter
		// or digit (rare in prose), and digit run starts.
		mac := cu.dash&nextBits(cu.dash, nx.dash, 3)&nextBits(cu.dash, nx.dash, 6) | cu.dot&nextBits(cu.dot, nx.dot, 5)
		sep := (cu.colon | mac) & prevBits(cu.alnum, pv.alnum, 1)
		starts := cu.digit &^ prevBits(cu.digit, pv.digit, 1)
		ts.sure[b-1], ts.maybe[b-1] = starts, sep
		if starts|sep != 0 {
			work |= 1 << (b - 1)
		}
		if !key40 {
			// keyRunAtLeast's arithmetic for 20 and 40 on the key
			// characters x, the run ending the last block carried in.
			x := cu.alnum | cu.plus | cu.slash
			if x == ^uint64(0) {
				keyRun += 64
			} else {
				head := keyRun + bits.TrailingZeros64(^x)
				r16 := x & (x >> 1)
				r16 &= r16 >> 2
				r16 &= r16 >> 4
				r16 &= r16 >> 8 // runs of 16
				if head >= 20 || r16&(r16>>4) != 0 {
					key20 = true
					key40 = key40 || head >= 40 || r16&(r16>>16)&(r16>>24) != 0
				}
				keyRun = bits.LeadingZeros64(^x)
			}
			// (A run that reaches the block's end is the next block's
			// head, or checked after the loop.)
		}
		// URL markers: "://", and "www." in either case ("ww" is rare);
		// '@'.
		if cu.colon|cu.at|cu.wfold&nextBits(cu.wfold, nx.wfold, 1) != 0 {
			marked |= 1 << (b - 1)
		}
	}
	key20 = key20 || keyRun >= 20
	key40 = key40 || keyRun >= 40
	ts.keyRun, ts.key20, ts.key40 = keyRun, key20, key40
	has := work
	for w := work; w != 0; w &= w - 1 {
		b := bits.TrailingZeros64(w) + 1
		pv, cu, nx := &m[b-1], &m[b], &m[b+1]
		at := ts.base + 64*(b-1)
		var sure, maybe uint64
		if sep := ts.maybe[b-1]; sep != 0 {
			maybe = sepCands(ts.s, at, sep, cu, nx)
		}
		if starts := ts.sure[b-1]; starts != 0 {
			c := startBits(starts, pv, cu, nx)
			maybe |= c.pre
			if c.checks(starts) {
				var dm uint64
				sure, dm = startCands(ts.s, at, starts, &c, cu, nx)
				maybe |= dm
			}
		}
		ts.sure[b-1], ts.maybe[b-1] = sure, maybe
		if sure|maybe == 0 {
			has &^= 1 << (b - 1)
		}
	}
	ts.has = has
	ts.markBlocks(marked)
}

// urlMarks returns the positions in the block cu (nx after it) of "://"
// and of "www." in any case: the candidates mark records.
func urlMarks(cu, nx *piiBlock) uint64 {
	return cu.colon&nextBits(cu.slash, nx.slash, 1)&nextBits(cu.slash, nx.slash, 2) |
		cu.wfold&nextBits(cu.wfold, nx.wfold, 1)&nextBits(cu.wfold, nx.wfold, 2)&nextBits(cu.dot, nx.dot, 3)
}

// markBlocks records the URL markers and '@' of the blocks in marked (bit
// b-1: block b of the chunk; blocks with neither record nothing).
func (ts *triggerScan) markBlocks(marked uint64) {
	m := &ts.m
	for ; marked != 0; marked &= marked - 1 {
		b := bits.TrailingZeros64(marked) + 1
		cu, nx := &m[b], &m[b+1]
		mk := urlMarks(cu, nx)
		at := ts.base + 64*(b-1)
		for ; mk != 0; mk &= mk - 1 {
			ts.mark(at + bits.TrailingZeros64(mk))
		}
		for a := cu.at; a != 0; a &= a - 1 {
			if ts.nAts == maxAts {
				ts.atsOver = true
				break
			}
			ts.ats[ts.nAts] = int32(at + bits.TrailingZeros64(a))
			ts.nAts++
		}
	}
}

// candVec is what piiCands computes for the blocks m[1:nb+1] of a chunk
// (block b in element or bit b-1), beside the digit run starts and the
// separators it writes where load writes them (triggerScan.sure and
// maybe): startBits and the blocks load looks at, eight blocks at a time.
// The layout is the one piiCands512 writes.
type candVec struct {
	pre    [trigChunk]uint64 // startSets.pre
	nino   [trigChunk]uint64 // startSets.nino
	long   [trigChunk]uint64 // startSets.long & starts
	few    uint64            // startSets.few (where the block has a start)
	work   uint64            // blocks with a sep, pre, nino, long or few
	marked uint64            // blocks with an '@' or a URL marker (urlMarks)
	any    uint64            // blocks with a start or a sep
	// keyRun is, in, the run of key characters (letters, digits, + and /)
	// ending the block before the chunk and, out, the run ending the
	// last group of eight blocks (blocks past nb hold none).
	keyRun int
	keys   uint64 // bit 0 (1): a run of 20 (40) key characters met (ORed in)
}

// piiCandsGo is piiCands512 and piiCandsAVX2 in Go: the reference
// TestPIICands holds them to. m holds the nb blocks of a chunk between the
// one before and the one after; it sets startsOut and sepOut of each block
// (load's digit run starts, zero in a block with no work, and separators)
// and v. The blocks up to the end of the last group of eight hold no key
// characters.
func piiCandsGo(m []piiBlock, nb int, v *candVec, startsOut, sepOut *[trigChunk]uint64) {
	keyRun := v.keyRun
	for b := 1; b <= (nb+7)&^7; b++ {
		if b > nb {
			// (Blocks past the chunk: only the key run ends here.)
			if keyRun >= 20 {
				v.keys |= 1
			}
			if keyRun >= 40 {
				v.keys |= 2
			}
			keyRun = 0
			continue
		}
		pv, cu, nx := &m[b-1], &m[b], &m[b+1]
		bit := uint64(1) << (b - 1)
		mac := cu.dash&nextBits(cu.dash, nx.dash, 3)&nextBits(cu.dash, nx.dash, 6) | cu.dot&nextBits(cu.dot, nx.dot, 5)
		sep := (cu.colon | mac) & prevBits(cu.alnum, pv.alnum, 1)
		starts := cu.digit &^ prevBits(cu.digit, pv.digit, 1)
		c := startBits(starts, pv, cu, nx)
		c.few = c.few && starts != 0
		c.long &= starts
		work := sep|c.pre|c.nino|c.long != 0 || c.few
		sepOut[b-1] = sep
		startsOut[b-1] = starts & -b2u(work) // zero where no work
		v.pre[b-1], v.nino[b-1], v.long[b-1] = c.pre, c.nino, c.long
		if starts|sep != 0 {
			v.any |= bit
		}
		if c.few {
			v.few |= bit
		}
		if work {
			v.work |= bit
		}
		if cu.at|urlMarks(cu, nx) != 0 {
			v.marked |= bit
		}
		// Key runs: the run from the blocks before and this block's
		// head, and runs inside the block.
		x := cu.alnum | cu.plus | cu.slash
		head := keyRun + bits.TrailingZeros64(^x)
		r16 := x & (x >> 1)
		r16 &= r16 >> 2
		r16 &= r16 >> 4
		r16 &= r16 >> 8 // runs of 16
		if head >= 20 || r16&(r16>>4) != 0 {
			v.keys |= 1
		}
		if head >= 40 || r16&(r16>>16)&(r16>>24) != 0 {
			v.keys |= 2
		}
		keyRun = bits.LeadingZeros64(^x)
	}
	v.keyRun = keyRun
}

// candsVec is the rest of load where piiCands computes the chunk's
// bitmaps.
func (ts *triggerScan) candsVec() {
	nb := ts.nb
	v := &ts.cv
	v.few, v.work, v.marked, v.any, v.keys = 0, 0, 0, 0, 0
	v.keyRun = ts.keyRun
	piiCands(ts.m[:], nb, v, &ts.sure, &ts.maybe)
	ts.keyRun = v.keyRun
	ts.key20 = ts.key20 || v.keys&1 != 0 || v.keyRun >= 20
	ts.key40 = ts.key40 || v.keys&2 != 0 || v.keyRun >= 40
	// sure and maybe hold the starts (zero in the blocks with no work)
	// and separators (in blocks with work).
	m := &ts.m
	has := v.work
	for w := v.work; w != 0; w &= w - 1 {
		k := bits.TrailingZeros64(w)
		cu, nx := &m[k+1], &m[k+2]
		at := ts.base + 64*k
		var sure, maybe uint64
		if sep := ts.maybe[k]; sep != 0 {
			maybe = sepCands(ts.s, at, sep, cu, nx)
		}
		if starts := ts.sure[k]; starts != 0 {
			c := startSets{pre: v.pre[k], nino: v.nino[k], long: v.long[k], few: v.few>>k&1 != 0}
			maybe |= c.pre
			if c.checks(starts) {
				var dm uint64
				sure, dm = startCands(ts.s, at, starts, &c, cu, nx)
				maybe |= dm
			}
		}
		ts.sure[k], ts.maybe[k] = sure, maybe
		if sure|maybe == 0 {
			has &^= 1 << k
		}
	}
	ts.has = has
	ts.markBlocks(v.marked)
}

// mark records the URL marker candidate at i ("://" or "www." in either
// case) when it is one of markLits.
func (ts *triggerScan) mark(i int) {
	k := 0
	if ts.s[i] != ':' {
		switch ts.s[i : i+4] {
		case "www.":
			k = 1
		case "WWW.":
			k = 2
		default:
			return
		}
	}
	m := &ts.marks
	if m.n == maxMarks {
		ts.marksOver = true
		return
	}
	m.pos[m.n], m.kind[m.n] = int32(i), uint8(k)
	m.n++
}

// prevBits aligns to each bit of x the bit k places before it (k in 1..63),
// taking the top bits of px, the block before.
func prevBits(x, px uint64, k uint) uint64 { return x<<k | px>>(64-k) }

// nextBits aligns to each bit of x the bit k places after it (k in 0..63),
// taking the low bits of nx, the block after.
func nextBits(x, nx uint64, k uint) uint64 { return x>>k | nx<<(64-k) }

// nextBitsV is nextBits for a k that is no constant, written so that the
// compiler knows both shifts are below 64.
func nextBitsV(x, nx uint64, k uint) uint64 { return x>>(k&63) | nx<<1<<((63-k)&63) }

// sepCands returns the positions of sep, the ':' and first MAC
// separators ('-' with '-' 3 and 6 bytes on, '.' with '.' 5 bytes on)
// after a letter or digit in the block cu of s at base (nx after it), that
// may be triggers: after a hex digit, and a ':' only where colonAddress
// holds (not a time as 08:01:07). isTrigger decides on them.
func sepCands(s string, base int, sep uint64, cu, nx *piiBlock) (maybe uint64) {
	for ; sep != 0; sep &= sep - 1 {
		k := uint(bits.TrailingZeros64(sep))
		t := base + int(k)
		if !isHex(s[t-1]) {
			continue
		}
		if s[t] == ':' {
			// colonAddress needs "::" or five colons in the 46 bytes
			// from t.
			colons := nextBitsV(cu.colon, nx.colon, k) & (1<<46 - 1)
			if colons&(colons>>1) == 0 && bits.OnesCount64(colons) < 5 || !colonAddress(s, t) {
				continue
			}
		}
		maybe |= 1 << k
	}
	return maybe
}

// The digit run starts of a block that may be triggers are found from
// isTrigger's conditions on the bytes around them: startBits sorts them
// by bit arithmetic into startSets, startCands decides on those into sure
// ones, where isTrigger reports a value that may start one byte before (a
// digit with enough digits in its cluster and nothing before it that
// isTrigger looks at), and maybe ones, a superset of the rest, for
// isTrigger to decide. (Only the first digit of a run may be a trigger:
// isTrigger passes the rest of a run with it.)

// startSets are the digit run starts of a block sorted by what decides
// whether they may be triggers (startBits).
type startSets struct {
	pre  uint64 // after '+', or a letter or '_' with no digit before it
	nino uint64 // after a two-letter word and a space, with digit pairs after
	long uint64 // where nine bytes (seven with three dots before digits) of the cluster follow
	// few: the block and the next hold fewer than four digits, and the
	// block's last byte is in a cluster (long is then zero).
	few bool
}

// startBits computes the startSets of the block cu (pv before it, nx after
// it) by bit arithmetic: piiCands512 computes the same for eight blocks at
// a time (TestPIICands).
func startBits(starts uint64, pv, cu, nx *piiBlock) (c startSets) {
	cd, nd, pd := cu.digit, nx.digit, pv.digit
	// After '+', a letter or '_' with no digit before it (gluedBefore),
	// or a word of two letters and a space with the digit pairs of a
	// National Insurance number after it.
	letter, letterPv := cu.alnum&^cd, pv.alnum&^pd
	c.pre = starts & prevBits(cu.plus, pv.plus, 1)
	if g := starts & prevBits(letter|cu.under, letterPv|pv.under, 1); g != 0 {
		c.pre |= g &^ prevBits(cd, pd, 2)
	}
	sp := starts & prevBits(cu.space, pv.space, 1) &^ prevBits(cu.alnum, pv.alnum, 4)
	// (ninoDigits byte by byte, on the starts with two digit pairs: "to
	// 164" has one).
	if sp &= prevBits(letter, letterPv, 2) & prevBits(letter, letterPv, 3); sp != 0 {
		d3 := nextBits(cd, nd, 3)
		sp &= nextBits(cd, nd, 1) & d3 & (nextBits(cd, nd, 2) | nextBits(cu.space, nx.space, 2)&nextBits(cd, nd, 4))
	}
	c.nino = sp
	// Or enough digits in its cluster: the rest of the cluster's runs have
	// fewer when the first has too few.
	clu, cluNx := cd|cu.grp(), nd|nx.grp()
	if bits.OnesCount64(cd)+bits.OnesCount64(nd) < 4 {
		// No cluster holds four digits in the bits at hand: a start is a
		// candidate only when its cluster runs past them (which needs
		// the block's last byte in it).
		c.few = clu>>63 != 0
		return c
	}
	// A cluster with nine digits from a run start is nine bytes long or
	// more, and one with four and three dots before a digit seven.
	c2 := clu & nextBits(clu, cluNx, 1)
	c4 := c2 & nextBits(c2, cluNx&(cluNx>>1), 2)
	long := c4 & nextBits(c4, cluNx&(cluNx>>1)&(cluNx>>2)&(cluNx>>3), 3) // 7 bytes
	if dotd := cu.dot&nextBits(cd, nd, 1) | nx.dot&(nd>>1); bits.OnesCount64(dotd) < 3 {
		long &= nextBits(c4, cluNx&(cluNx>>1)&(cluNx>>2)&(cluNx>>3), 5) // 9 bytes
	}
	c.long = long
	return c
}

// checks reports whether startCands has more to do for starts than
// report c.pre: most blocks with digits have no start to check.
func (c *startSets) checks(starts uint64) bool {
	return c.nino != 0 || c.few || starts&c.long&^c.pre != 0
}

// startCands returns the sure and maybe triggers among starts, the digit
// run starts of the block cu of s at base (nx after it), sorted into c.
func startCands(s string, base int, starts uint64, c *startSets, cu, nx *piiBlock) (sure, maybe uint64) {
	prefixed := c.pre
	for sp := c.nino; sp != 0; sp &= sp - 1 {
		if k := bits.TrailingZeros64(sp); ninoDigits(s, base+k) {
			prefixed |= 1 << k
		}
	}
	maybe = prefixed
	cd, nd := cu.digit, nx.digit
	clu, cluNx := cd|cu.grp(), nd|nx.grp()
	if c.few {
		for rest := starts; rest != 0; rest &= rest - 1 {
			k := uint(bits.TrailingZeros64(rest))
			if nextBitsV(clu, cluNx, k) == ^uint64(0) {
				maybe |= 1 << k
			}
		}
		return 0, maybe
	}
	// Prefixed starts are candidates already.
	for rest := starts & c.long &^ prefixed; rest != 0; {
		k := uint(bits.TrailingZeros64(rest))
		rest &= rest - 1
		in := ^nextBitsV(clu, cluNx, k)
		dk := nextBitsV(cd, nd, k)
		var d int
		if in == 0 {
			// The cluster runs past the bits at hand: isTrigger
			// counts its digits up to 13, which these may hold
			// ("1 1 1 …"); else it decides.
			if d = bits.OnesCount64(dk); d < 13 {
				maybe |= 1 << k
				continue
			}
		} else {
			in = in&-in - 1
			d = bits.OnesCount64(dk & in)
		}
		if d >= 4 && d < 9 {
			// IPv4: a dot before a digit (nx's bit 63, whose next byte
			// is not at hand, is never in the 64 bits after a bit of
			// cu), three times.
			dotd := nextBitsV(cu.dot&nextBits(cd, nd, 1), nx.dot&(nd>>1), k)
			if bits.OnesCount64(dotd&in) < 3 {
				d = 0
			}
		}
		if d >= 4 {
			// isTrigger's test of the word start (the run's first digit
			// is the only one here that is).
			t := base + int(k)
			if (t == 0 || plainBefore(s[t-1])) && !numberMayStart(s, t, bits.TrailingZeros64(^dk), d) {
				continue
			}
			sure |= 1 << k
			continue
		}
		rest &^= in << k // the cluster's later runs
	}
	return sure, maybe
}

// release drops the text: a pooled triggerScan must not keep it alive.
func (ts *triggerScan) release() { ts.s = "" }

// finish classifies the blocks of the text that are not yet, for the keys
// and marks fields.
func (ts *triggerScan) finish() {
	for ts.base+64*ts.nb < len(ts.s) {
		ts.load(ts.base/64 + ts.nb)
	}
}

// next is nextTrigger(ts.s, i) for i at or after where the last call
// started. Once it returns len(ts.s), every block of the text has been
// classified and the keys and marks fields are complete.
func (ts *triggerScan) next(i int) (t, back int) {
	s := ts.s
	n := len(s)
	if i > 0 && i < n && isDigit(s[i]) && isDigit(s[i-1]) {
		// Inside a digit run, whose start (a candidate) is behind i.
		back, after := isTrigger(s, i)
		if back >= 0 {
			return i, back
		}
		i = after
	}
	for i < n {
		for i >= ts.base+64*ts.nb {
			ts.load(ts.base/64 + ts.nb) // every block, in order
		}
		b := (i - ts.base) >> 6
		below := uint64(1)<<(i&63) - 1
		m := (ts.sure[b] | ts.maybe[b]) &^ below
		if m == 0 {
			// The next block of the chunk with a candidate.
			later := ts.has &^ (2<<b - 1)
			if later == 0 {
				i = ts.base + 64*ts.nb
				continue
			}
			b = bits.TrailingZeros64(later)
			m = ts.sure[b] | ts.maybe[b]
		}
		k := bits.TrailingZeros64(m)
		t := ts.base + 64*b + k
		if ts.sure[b]&(1<<k) != 0 {
			return t, 1
		}
		back, after := isTrigger(s, t)
		if back >= 0 {
			return t, back
		}
		i = max(after, t+1)
	}
	// From inside a digit run isTrigger may pass the rest of the text at
	// once, past blocks not yet classified.
	ts.finish()
	return n, 0
}
