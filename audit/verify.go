package audit

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// Problem kinds `warden audit verify` reports.
const (
	ProblemMalformed    = "malformed"       // not a sealed line
	ProblemEdited       = "edited"          // the line's hash does not match its bytes
	ProblemConflict     = "conflict"        // two different lines claim one place in the chain
	ProblemDeleted      = "deleted"         // a gap in the chain
	ProblemBrokenLink   = "broken-link"     // a line does not follow the one before it
	ProblemReordered    = "reordered"       // a source holds lines out of chain order
	ProblemSignature    = "bad-signature"   // a checkpoint's signature fails
	ProblemUntrusted    = "untrusted-key"   // a checkpoint signed by a key not trusted
	ProblemUnanchored   = "unanchored-tail" // lines after the last checkpoint (truncated, or still running)
	ProblemOpen         = "open-chain"      // the last checkpoint is not a shutdown's
	ProblemNoCheckpoint = "no-checkpoint"   // an instance without any checkpoint
	ProblemTruncated    = "truncated"       // a chain ends before a seq it is known to have reached
)

// Problem is one finding of Verify.
type Problem struct {
	Instance string
	Seq      uint64
	Kind     string
	Source   string
	Detail   string
}

func (p Problem) String() string {
	s := fmt.Sprintf("%s: instance %s seq %d", p.Kind, p.Instance, p.Seq)
	if p.Source != "" {
		s += " (" + p.Source + ")"
	}
	if p.Detail != "" {
		s += ": " + p.Detail
	}
	return s
}

// ChainSummary describes one instance's chain as verified.
type ChainSummary struct {
	Instance          string
	Records           int // call records
	Calls             int // calls they stand for (an aggregated denial counts its count)
	Checkpoints       int
	FirstSeq, LastSeq uint64
	LastCheckpoint    uint64
	Final             bool   // the chain ends with a shutdown checkpoint
	Key               string // the key its checkpoints are signed with
}

// VerifyOptions: Keys pins the checkpoint keys to trust (base64 Ed25519,
// as in the spool's signing.pub); without them each instance's first
// checkpoint key is trusted and the rest must match it. AllowOpen accepts a
// chain that does not end with a shutdown checkpoint (a running instance),
// reporting its unanchored tail only as a warning.
type VerifyOptions struct {
	Keys      []string
	AllowOpen bool
	// MinSeq names, per instance, a seq its chain is known to have reached
	// (from warden_audit_chain_seq or an earlier verify): a chain that ends
	// before it, or is missing, was truncated even if it ends at a
	// checkpoint.
	MinSeq map[string]uint64
}

// Verification is Verify's answer: Problems empty means every line was
// accounted for, in order, unedited and covered by a signed checkpoint.
type Verification struct {
	Chains     []ChainSummary
	Problems   []Problem
	Warnings   []Problem
	Lines      int
	Duplicates int // identical re-deliveries (at-least-once), not a problem
}

// Verifier checks hash chains line by line; Finish reports.
type Verifier struct {
	o      VerifyOptions
	keys   map[string]bool
	chains map[string]map[uint64]*chainEntry
	last   map[[2]string]uint64 // (source, instance) → last seq seen there
	out    Verification
}

type chainEntry struct {
	t      Trailer
	kind   string
	key    string
	final  bool
	calls  int
	source string
}

// NewVerifier starts a verification.
func NewVerifier(o VerifyOptions) *Verifier {
	v := &Verifier{o: o, keys: map[string]bool{}, chains: map[string]map[uint64]*chainEntry{}, last: map[[2]string]uint64{}}
	for _, k := range o.Keys {
		v.keys[strings.TrimSpace(k)] = true
	}
	return v
}

type lineMeta struct {
	Instance string `json:"instance"`
	Kind     string `json:"kind"`
	Key      string `json:"key"`
	Final    bool   `json:"final"`
	Count    int    `json:"count"`
}

// Add checks one line read from source (a file or object name: lines of one
// source must be in chain order).
func (v *Verifier) Add(source string, line []byte) {
	v.out.Lines++
	t, err := ParseTrailer(line)
	var m lineMeta
	if err == nil {
		err = json.Unmarshal(line, &m)
	}
	if err != nil {
		v.out.Problems = append(v.out.Problems, Problem{Kind: ProblemMalformed, Source: source, Detail: err.Error()})
		return
	}
	if !t.Valid() {
		// Reported here; it still holds its place so the chain around it
		// is checked as usual (and no gap is reported twice).
		v.out.Problems = append(v.out.Problems, Problem{Instance: m.Instance, Seq: t.Seq, Kind: ProblemEdited, Source: source,
			Detail: "the line's bytes do not match its hash"})
	}
	c := v.chains[m.Instance]
	if c == nil {
		c = map[uint64]*chainEntry{}
		v.chains[m.Instance] = c
	}
	old := c[t.Seq]
	if old != nil && old.t.Hash == t.Hash {
		v.out.Duplicates++ // a re-delivery, wherever it landed (at least once)
		return
	}
	sk := [2]string{source, m.Instance}
	if last, ok := v.last[sk]; ok && t.Seq < last {
		v.out.Problems = append(v.out.Problems, Problem{Instance: m.Instance, Seq: t.Seq, Kind: ProblemReordered, Source: source,
			Detail: fmt.Sprintf("after seq %d in the same source", last)})
	}
	v.last[sk] = max(v.last[sk], t.Seq)
	if old != nil {
		v.out.Problems = append(v.out.Problems, Problem{Instance: m.Instance, Seq: t.Seq, Kind: ProblemConflict, Source: source,
			Detail: "differs from the line with this seq in " + old.source})
		return
	}
	t.Body = nil // aliases the caller's line
	calls := 1
	if m.Count > 1 && m.Count <= maxCount { // beyond: no count Warden writes (the report calls the line malformed)
		calls = m.Count
	}
	c[t.Seq] = &chainEntry{t: t, kind: m.Kind, key: m.Key, final: m.Final, calls: calls, source: source}
}

// Finish checks each chain's continuity and checkpoints.
func (v *Verifier) Finish() *Verification {
	insts := make([]string, 0, len(v.chains))
	for in := range v.chains {
		insts = append(insts, in)
	}
	slices.Sort(insts)
	for _, in := range insts {
		v.out.Chains = append(v.out.Chains, v.finishChain(in, v.chains[in]))
	}
	for in, min := range v.o.MinSeq {
		var last uint64
		if c := v.chains[in]; c != nil {
			for s := range c {
				last = max(last, s)
			}
		}
		if last < min {
			v.out.Problems = append(v.out.Problems, Problem{Instance: in, Seq: last, Kind: ProblemTruncated,
				Detail: fmt.Sprintf("the chain ends at seq %d but is known to have reached seq %d", last, min)})
		}
	}
	return &v.out
}

func (v *Verifier) finishChain(in string, c map[uint64]*chainEntry) ChainSummary {
	seqs := make([]uint64, 0, len(c))
	for s := range c {
		seqs = append(seqs, s)
	}
	slices.Sort(seqs)
	sum := ChainSummary{Instance: in, FirstSeq: seqs[0], LastSeq: seqs[len(seqs)-1]}
	problem := func(seq uint64, kind, detail string) {
		v.out.Problems = append(v.out.Problems, Problem{Instance: in, Seq: seq, Kind: kind, Source: c[seq].source, Detail: detail})
	}
	if seqs[0] != 1 {
		problem(seqs[0], ProblemDeleted, fmt.Sprintf("the chain starts at seq %d: lines 1–%d are missing", seqs[0], seqs[0]-1))
	} else if c[1].t.Prev != ([32]byte{}) {
		problem(1, ProblemBrokenLink, "the first line does not start the chain")
	}
	for i, s := range seqs {
		e := c[s]
		if i > 0 {
			p := seqs[i-1]
			if s != p+1 {
				problem(s, ProblemDeleted, fmt.Sprintf("lines %d–%d are missing", p+1, s-1))
			} else if e.t.Prev != c[p].t.Hash {
				problem(s, ProblemBrokenLink, fmt.Sprintf("prev does not match the hash of seq %d", p))
			}
		}
		if e.kind != "checkpoint" {
			sum.Records++
			sum.Calls += e.calls
			continue
		}
		sum.Checkpoints++
		sum.LastCheckpoint = s
		sum.Final = e.final
		pub, err := base64.StdEncoding.DecodeString(e.key)
		switch {
		case err != nil || len(pub) != ed25519.PublicKeySize:
			problem(s, ProblemSignature, "checkpoint key is not an Ed25519 public key")
			continue
		case e.t.Sig == nil:
			problem(s, ProblemSignature, "checkpoint is not signed")
			continue
		case !ed25519.Verify(pub, e.t.Hash[:], e.t.Sig):
			problem(s, ProblemSignature, "signature does not verify")
			continue
		}
		switch {
		case len(v.keys) > 0 && !v.keys[e.key]:
			problem(s, ProblemUntrusted, "signed by "+e.key+", not a --key given")
		case len(v.keys) == 0 && sum.Key != "" && e.key != sum.Key:
			problem(s, ProblemUntrusted, "signed by "+e.key+", not the key of the chain's first checkpoint ("+sum.Key+")")
		}
		if sum.Key == "" {
			sum.Key = e.key
		}
	}
	switch {
	case sum.Checkpoints == 0:
		v.out.Problems = append(v.out.Problems, Problem{Instance: in, Seq: sum.LastSeq, Kind: ProblemNoCheckpoint,
			Detail: "no signed checkpoint covers this chain"})
	case sum.LastCheckpoint < sum.LastSeq:
		p := Problem{Instance: in, Seq: sum.LastSeq, Kind: ProblemUnanchored, Source: c[sum.LastSeq].source,
			Detail: fmt.Sprintf("%d lines after the last checkpoint (seq %d): the tail was truncated, or the instance is still running", sum.LastSeq-sum.LastCheckpoint, sum.LastCheckpoint)}
		v.addTail(p)
	case !sum.Final:
		v.addTail(Problem{Instance: in, Seq: sum.LastCheckpoint, Kind: ProblemOpen, Source: c[sum.LastCheckpoint].source,
			Detail: "the chain does not end with a shutdown checkpoint: the tail was truncated, or the instance is still running or crashed"})
	}
	return sum
}

func (v *Verifier) addTail(p Problem) {
	if v.o.AllowOpen {
		v.out.Warnings = append(v.out.Warnings, p)
	} else {
		v.out.Problems = append(v.out.Problems, p)
	}
}
