package proxy

import (
	"crypto/sha256"
	"hash"
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
	body   []byte
	sum    [sha256.Size]byte
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
	if prefix == len(b) && len(b) == len(d.body) {
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
