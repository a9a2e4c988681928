package audit

import (
	"slices"
	"strings"
	"testing"
)

// sealedLines runs n calls through an in-memory pipeline and returns what
// its sink received (start checkpoint, records, periodic and final
// checkpoints) and the checkpoint key.
func sealedLines(t *testing.T, n int) ([]string, string) {
	t.Helper()
	sink := newMemSink()
	o := testOptions("", sink)
	o.CheckpointEvery = 10
	p, err := Open(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		p.Write(callRecord(i))
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	lines, _ := sink.snapshot()
	return lines, p.PublicKey()
}

func kinds(ps []Problem) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Kind)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func TestVerifyDetectsTampering(t *testing.T) {
	lines, key := sealedLines(t, 35)
	if len(lines) != 1+35+3+1 {
		t.Fatalf("%d lines", len(lines))
	}
	recordAt := func(i int) int { // index of the i-th call record
		for j, l := range lines {
			if !strings.Contains(l, `"kind":"checkpoint"`) {
				if i == 0 {
					return j
				}
				i--
			}
		}
		t.Fatal("no such record")
		return 0
	}
	edit := func(f func([]string) []string) []string { return f(slices.Clone(lines)) }
	for _, tc := range []struct {
		name  string
		lines []string
		opts  VerifyOptions
		want  []string // problem kinds
	}{
		{"intact", lines, VerifyOptions{Keys: []string{key}}, nil},
		{"intact, key trusted on first use", lines, VerifyOptions{}, nil},
		{"delivered twice in one source (a retried or replayed batch)", append(slices.Clone(lines), lines[3:9]...), VerifyOptions{}, nil},
		{"deleted record", edit(func(l []string) []string { return slices.Delete(l, recordAt(5), recordAt(5)+1) }), VerifyOptions{}, []string{ProblemDeleted}},
		{"edited record", edit(func(l []string) []string {
			i := recordAt(7)
			l[i] = strings.Replace(l[i], `"decision":"allow"`, `"decision":"deny"`, 1)
			return l
		}), VerifyOptions{}, []string{ProblemEdited}},
		{"edited record with its hash recomputed", edit(func(l []string) []string {
			i := recordAt(7)
			tr, _ := ParseTrailer([]byte(l[i]))
			body := strings.Replace(string(tr.Body), `"status":200`, `"status":201`, 1)
			h := chainHash(tr.Prev, tr.Seq, bodyHash([]byte(body)))
			l[i] = string(append(appendTrailer([]byte(body), tr.Seq, tr.Prev, h), '}'))
			return l
		}), VerifyOptions{}, []string{ProblemBrokenLink}},
		{"reordered records", edit(func(l []string) []string {
			i, j := recordAt(3), recordAt(4)
			l[i], l[j] = l[j], l[i]
			return l
		}), VerifyOptions{}, []string{ProblemReordered}},
		{"truncated tail", lines[:len(lines)-3], VerifyOptions{}, []string{ProblemUnanchored}},
		{"truncated tail, open chains allowed, cut at a checkpoint", lines[:len(lines)-6], VerifyOptions{AllowOpen: true}, nil},
		{"truncated at a checkpoint", lines[:len(lines)-6], VerifyOptions{}, []string{ProblemOpen}},
		{"untrusted key", lines, VerifyOptions{Keys: []string{"AAAAC3NzaC1lZDI1NTE5AAAAIPb0YmQ4mJ9m8fK2s0q9q2cZ4l5aEJm9dS0a1b2c3d4="}}, []string{ProblemUntrusted}},
		{"forged checkpoint signature", edit(func(l []string) []string {
			last := l[len(l)-1]
			i := strings.LastIndex(last, `"sig":"`) + len(`"sig":"`)
			c := byte('A')
			if last[i] == 'A' {
				c = 'B'
			}
			l[len(l)-1] = last[:i] + string(c) + last[i+1:]
			return l
		}), VerifyOptions{}, []string{ProblemSignature}},
		{"not a sealed line", append(slices.Clone(lines), `{"v":2,"request_id":"x"}`), VerifyOptions{}, []string{ProblemMalformed}},
		{"head deleted", lines[2:], VerifyOptions{}, []string{ProblemDeleted}},
		{"reached the seq an anchor names", lines, VerifyOptions{MinSeq: map[string]uint64{"test-1": uint64(len(lines))}}, nil},
		// Cut right after an earlier checkpoint, with the open tail allowed:
		// only an anchor outside the sink tells.
		{"cut at a checkpoint, caught by an anchor", lines[:len(lines)-6], VerifyOptions{AllowOpen: true, MinSeq: map[string]uint64{"test-1": uint64(len(lines))}}, []string{ProblemTruncated}},
		{"a whole chain deleted, caught by an anchor", lines, VerifyOptions{MinSeq: map[string]uint64{"other-instance": 5}}, []string{ProblemTruncated}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := verifyLines(tc.lines, tc.opts)
			if got := kinds(res.Problems); !slices.Equal(got, tc.want) {
				t.Errorf("problems %v, want %v: %v", got, tc.want, res.Problems)
			}
		})
	}
	// Re-delivery in another source (at-least-once) is a duplicate, not a problem.
	v := NewVerifier(VerifyOptions{})
	for _, l := range lines {
		v.Add("a", []byte(l))
	}
	for _, l := range lines[5:12] {
		v.Add("b", []byte(l))
	}
	if res := v.Finish(); len(res.Problems) != 0 || res.Duplicates != 7 {
		t.Errorf("re-delivery: %+v", res)
	}
}

func FuzzParseTrailer(f *testing.F) {
	lines, _ := sealedLinesForFuzz()
	for _, l := range lines {
		f.Add(l)
	}
	f.Add(`{"seq":1,"prev":"","hash":""}`)
	f.Add(`{,"sig":"`)
	f.Fuzz(func(t *testing.T, line string) {
		tr, err := ParseTrailer([]byte(line))
		if err != nil {
			return
		}
		if len(tr.Body) > len(line) || tr.Seq == 0 {
			t.Fatalf("bad parse of %q", line)
		}
		v := NewVerifier(VerifyOptions{})
		v.Add("f", []byte(line))
		v.Finish()
	})
}

// sealedLinesForFuzz builds a few sealed lines without a testing.T.
func sealedLinesForFuzz() ([]string, error) {
	var out []string
	var prev [32]byte
	for i, body := range []string{`{"v":2,"request_id":"a"`, `{"v":2,"kind":"checkpoint","id":"x","instance":"i","key":"k"`} {
		h := chainHash(prev, uint64(i+1), bodyHash([]byte(body)))
		out = append(out, string(append(appendTrailer([]byte(body), uint64(i+1), prev, h), '}')))
		prev = h
	}
	return out, nil
}
