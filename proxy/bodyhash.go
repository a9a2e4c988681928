package proxy

import (
	"crypto/sha256"
	"hash"
)

// hashCheckpoint is how often promptDigest keeps the digest's state.
const hashCheckpoint = 64 << 10

// promptDigest is the SHA-256 of the request body as the app sent it (the
// record's prompt_sha256), with the digest's state kept every
// hashCheckpoint bytes. The SigV4 payload hash of the body Warden forwards
// is the same bytes when nothing rewrote them, and shares all but the tail
// when only the metadata stamp did (it edits next to the closing brace): it
// is then taken from the last checkpoint inside the shared prefix, so a
// long-context prompt is hashed once, not twice (issue 19).
type promptDigest struct {
	body   []byte
	sum    [sha256.Size]byte
	states []hash.Hash // states[i] has read body[:(i+1)*hashCheckpoint]
}

func newPromptDigest(body []byte) *promptDigest {
	d := &promptDigest{body: body}
	if len(body) <= hashCheckpoint {
		d.sum = sha256.Sum256(body)
		return d
	}
	h := sha256.New()
	off := 0
	for ; len(body)-off > hashCheckpoint; off += hashCheckpoint {
		h.Write(body[off : off+hashCheckpoint])
		if c, err := h.(hash.Cloner).Clone(); err == nil {
			d.states = append(d.states, c)
		}
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
	k := min(prefix/hashCheckpoint, len(d.states))
	if k == 0 {
		return sha256.Sum256(b)
	}
	c, err := d.states[k-1].(hash.Cloner).Clone()
	if err != nil {
		return sha256.Sum256(b)
	}
	c.Write(b[k*hashCheckpoint:])
	var sum [sha256.Size]byte
	c.Sum(sum[:0])
	return sum
}
