package proxy

import (
	"bytes"
	"crypto/sha256"
	"math/rand/v2"
	"testing"
)

// TestPromptDigestSumOf: the continuation of the prompt's digest equals a
// fresh SHA-256 of the rewritten body for every prefix length, around the
// checkpoints and past them, bodies shorter and longer than the original.
func TestPromptDigestSumOf(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 100, hashTail, hashTail + 1, 4096, hashCheckpoint - 1, hashCheckpoint, hashCheckpoint + 1, 3*hashCheckpoint + 17, 800 << 10} {
		orig := make([]byte, n)
		for i := range orig {
			orig[i] = byte(rng.IntN(256))
		}
		d := newPromptDigest(orig)
		if d.sum != sha256.Sum256(orig) {
			t.Fatalf("n=%d: digest of the original is wrong", n)
		}
		// A stamp edits the last bytes: a state must lie within hashTail
		// (and a block) of the end, or the payload is hashed twice.
		if n >= hashTail+sha256.BlockSize {
			if len(d.states) == 0 || d.states[len(d.states)-1].off < n-hashTail-sha256.BlockSize {
				t.Fatalf("n=%d: no state near the end (%d states)", n, len(d.states))
			}
		}
		for _, prefix := range []int{0, 1, n - hashTail - 1, n - hashTail, n - 64, hashCheckpoint - 1, hashCheckpoint, hashCheckpoint + 1, 2 * hashCheckpoint, n - 1, n} {
			if prefix < 0 || prefix > n {
				continue
			}
			for _, tail := range [][]byte{nil, []byte(`,"requestMetadata":{"warden.app":"a"}}`), bytes.Repeat([]byte("x"), hashCheckpoint+3)} {
				b := append(append([]byte{}, orig[:prefix]...), tail...)
				if got, want := d.sumOf(b, prefix), sha256.Sum256(b); got != want {
					t.Fatalf("n=%d prefix=%d tail=%d: continuation %x, want %x", n, prefix, len(tail), got, want)
				}
			}
		}
	}
}

// TestPayloadSumSharesOnlyWhatItMay: a body the stamp made shares the
// prompt's digest; any other body, or the stamped one after a later rewrite
// (a mask, a cap), is hashed afresh.
func TestPayloadSumSharesOnlyWhatItMay(t *testing.T) {
	orig := []byte(`{"messages":[{"role":"user","content":[{"text":"` + string(bytes.Repeat([]byte("y"), 300<<10)) + `"}]}]}`)
	c := &call{}
	c.hashPrompt(orig)
	if got := c.payloadSum(orig); got != sha256.Sum256(orig) {
		t.Fatal("the app's own bytes")
	}
	stamped, prefix, err := stampConverseBodyAt(orig, stamp{App: "a", IdentitySource: "static", RequestID: "r"}, false)
	if err != nil {
		t.Fatal(err)
	}
	if prefix < len(orig)-8 {
		t.Fatalf("the stamp shares only %d of %d bytes", prefix, len(orig))
	}
	c.prefixOf, c.prefixLen = stamped, prefix
	if got := c.payloadSum(stamped); got != sha256.Sum256(stamped) {
		t.Fatal("the stamped body")
	}
	rewritten := append([]byte{}, stamped...)
	rewritten[10] = 'X' // a later rewrite inside the prefix writes a new array
	if got := c.payloadSum(rewritten); got != sha256.Sum256(rewritten) {
		t.Fatal("a rewritten body must be hashed afresh")
	}
	if got := c.payloadSum(stamped[:len(stamped)-1]); got != sha256.Sum256(stamped[:len(stamped)-1]) {
		t.Fatal("a re-sliced body must be hashed afresh")
	}
}

func BenchmarkPayloadSum800KB(b *testing.B) {
	orig := []byte(`{"messages":[{"role":"user","content":[{"text":"` + string(bytes.Repeat([]byte("y"), 800<<10)) + `"}]}]}`)
	b.SetBytes(int64(len(orig)))
	for b.Loop() {
		c := &call{}
		c.hashPrompt(orig)
		stamped, prefix, _ := stampConverseBodyAt(orig, stamp{App: "a", IdentitySource: "static", RequestID: "r"}, false)
		c.prefixOf, c.prefixLen = stamped, prefix
		_ = c.payloadSum(stamped)
	}
}
