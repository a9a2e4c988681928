package proxy

import (
	"crypto/sha256"
	"hash"
	"math"
)

const (
	// hashCheckpoint is how often promptDigest keeps the digest's state.
	hashCheckpoint = 64 << 10
	// hashTail is how far before the body's end the last state is kept:
	// the metadata stamp edits right after the last member's value, in
	// the last bytes of a body.
	hashTail = 128
)

// promptDigest is the SHA-256 of the request body as the app sent it (the
// record's prompt_sha256), with the digest's state kept every
// hashCheckpoint bytes and once more (at a block boundary) within hashTail
// bytes of the end. The SigV4 payload hash of the body Warden forwards is
// the same bytes when nothing rewrote them, and shares all but the tail when
// only the metadata stamp did: it is then taken from the last state inside
// the shared prefix, so a prompt is hashed once, not twice (issue 19).
type promptDigest struct {
	body []byte
	sum  [sha256.Size]byte
	// edited says body's bytes were rewritten in place after hashing (the
	// metadata stamp, stampMetadata): only its prefix is still the sum's.
	edited bool
	states []hashState // by offset, ascending
}

type hashState struct {
	off int // the state has read body[:off]
	h   hash.Hash
}

func newPromptDigest(body []byte) *promptDigest {
	d := &promptDigest{body: body}
	if len(body) <= hashTail {
		d.sum = sha256.Sum256(body)
		return d
	}
	tail := (len(body) - hashTail) &^ (sha256.BlockSize - 1)
	h := sha256.New()
	off := 0
	keep := func(to int) {
		h.Write(body[off:to])
		off = to
		if c, err := h.(hash.Cloner).Clone(); err == nil {
			d.states = append(d.states, hashState{off: off, h: c})
		}
	}
	for off+hashCheckpoint < tail {
		keep(off + hashCheckpoint)
	}
	if tail > off {
		keep(tail)
	}
	h.Write(body[off:])
	h.Sum(d.sum[:0])
	return d
}

// sumOf is the SHA-256 of b, whose first prefix bytes are d.body's.
func (d *promptDigest) sumOf(b []byte, prefix int) [sha256.Size]byte {
	prefix = min(prefix, len(b), len(d.body))
	if prefix == len(b) && len(b) == len(d.body) && !d.edited {
		return d.sum
	}
	for i := len(d.states) - 1; i >= 0; i-- {
		st := d.states[i]
		if st.off > prefix {
			continue
		}
		c, err := st.h.(hash.Cloner).Clone()
		if err != nil {
			break
		}
		c.Write(b[st.off:])
		var sum [sha256.Size]byte
		c.Sum(sum[:0])
		return sum
	}
	return sha256.Sum256(b)
}

// feedBatch is how many received bytes digestFeed gathers before handing
// them to its goroutine (one channel operation per batch, not per read).
const feedBatch = 32 << 10

// feedHoldBack is how many of the last received bytes the feed's goroutine
// leaves unhashed until the body's length is known: the state
// promptDigest keeps near the end (hashTail) lies within them.
const feedHoldBack = 2*hashTail + sha256.BlockSize

// digestFeed computes a promptDigest while the body is read, on its own
// goroutine: the reader hands it each run of received bytes (views of the
// read buffer, never written again while the digest needs them), and when
// the body is complete only its last bytes are left to hash. The digest is
// the one newPromptDigest gives for the same bytes, states included
// (TestDigestFeedMatches, FuzzDigestFeed).
type digestFeed struct {
	ch      chan []byte
	done    chan struct{}
	pending []byte        // received, not yet sent: one contiguous run of one array
	d       *promptDigest // set by finish, filled by run
	aborted bool          // set by abort before it closes ch
}

func newDigestFeed() *digestFeed {
	f := &digestFeed{ch: make(chan []byte, 8), done: make(chan struct{})}
	go f.run()
	return f
}

// add notes p, the next received bytes (a view of the read buffer).
func (f *digestFeed) add(p []byte) {
	if len(p) == 0 {
		return
	}
	if len(f.pending) > 0 && len(f.pending) < cap(f.pending) && &f.pending[:len(f.pending)+1][len(f.pending)] == &p[0] {
		f.pending = f.pending[:len(f.pending)+len(p)] // continues the run in the same array
	} else {
		f.flush()
		f.pending = p
	}
	if len(f.pending) >= feedBatch {
		f.flush()
	}
}

func (f *digestFeed) flush() {
	if len(f.pending) > 0 {
		f.ch <- f.pending
		f.pending = nil
	}
}

// finish says the body is complete; body must be every byte added, in
// order. The digest is ready when done is closed.
func (f *digestFeed) finish(body []byte) {
	f.flush()
	f.d = &promptDigest{body: body} // read by run only after the channel closes
	close(f.ch)
}

// abort stops the feed without a digest (the body was refused) and waits
// for its goroutine, so no view of the buffer outlives the call's read.
func (f *digestFeed) abort() {
	f.flush()
	f.aborted = true
	close(f.ch)
	<-f.done
}

func (f *digestFeed) run() {
	defer close(f.done)
	var (
		h      = sha256.New()
		off    int      // bytes written to h
		held   [][]byte // received runs not yet written to h
		nHeld  int
		states []hashState
	)
	// write hashes p, keeping a state at every multiple of hashCheckpoint
	// strictly below limit.
	write := func(p []byte, limit int) {
		for len(p) > 0 {
			next := (off/hashCheckpoint + 1) * hashCheckpoint
			n := min(len(p), next-off)
			h.Write(p[:n])
			off += n
			p = p[n:]
			if off == next && off < limit {
				if c, err := h.(hash.Cloner).Clone(); err == nil {
					states = append(states, hashState{off: off, h: c})
				}
			}
		}
	}
	// drain writes held runs until at most keep bytes are held.
	drain := func(keep, limit int) {
		for nHeld > keep {
			p := held[0]
			n := min(len(p), nHeld-keep)
			write(p[:n], limit)
			nHeld -= n
			if n == len(p) {
				held[0] = nil
				held = held[1:]
			} else {
				held[0] = p[n:]
			}
		}
	}
	for p := range f.ch {
		held = append(held, p)
		nHeld += len(p)
		// Everything but the hold-back is below the final tail state
		// (hashTail before the end, rounded down to a block), so every
		// multiple of hashCheckpoint reached here is one newPromptDigest
		// keeps as well.
		drain(feedHoldBack, math.MaxInt)
	}
	if f.aborted {
		return
	}
	d := f.d
	total := off + nHeld
	if total > hashTail {
		// Up to the tail, with the checkpoints strictly below it, then the
		// tail state (newPromptDigest's keep(tail)).
		tail := (total - hashTail) &^ (sha256.BlockSize - 1)
		drain(total-tail, tail)
		if tail > 0 {
			if c, err := h.(hash.Cloner).Clone(); err == nil {
				states = append(states, hashState{off: off, h: c})
			}
		}
	}
	drain(0, 0)
	h.Sum(d.sum[:0])
	d.states = states
}
