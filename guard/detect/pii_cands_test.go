package detect

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"unsafe"
)

// checkPIICands compares every vector kernel of piiCands the CPU has
// (piiCandsKernels: piiCands512, piiCandsAVX2) and piiCands itself with
// piiCandsGo on the chunk m of nb blocks (m[0] before, m[nb+1] after) and
// the key run keyRun before it.
func checkPIICands(t *testing.T, m *[trigChunk + 2]piiBlock, nb, keyRun int) {
	t.Helper()
	var want candVec
	var wantStarts, wantSep [trigChunk]uint64
	prep := func(v *candVec, starts, sep *[trigChunk]uint64) {
		// Everything but the masks, the key run and the keys is left as
		// it was (candsVec resets those): garbage must not show.
		f := unsafe.Slice((*uint64)(unsafe.Pointer(v)), unsafe.Sizeof(*v)/8)
		for i := range f {
			f[i] = 0x5a5a5a5a5a5a5a5a
		}
		v.few, v.work, v.marked, v.any, v.keys, v.keyRun = 0, 0, 0, 0, 0, keyRun
		for i := range starts {
			starts[i], sep[i] = 1, 2
		}
	}
	prep(&want, &wantStarts, &wantSep)
	piiCandsGo(m[:], nb, &want, &wantStarts, &wantSep)
	kernels := piiCandsKernels()
	kernels["piiCands"] = piiCands
	for name, kernel := range kernels {
		var got candVec
		var gotStarts, gotSep [trigChunk]uint64
		prep(&got, &gotStarts, &gotSep)
		kernel(m[:], nb, &got, &gotStarts, &gotSep)
		for b := range nb {
			for _, f := range []struct {
				name      string
				got, want uint64
			}{
				{"starts", gotStarts[b], wantStarts[b]},
				{"sep", gotSep[b], wantSep[b]},
				{"pre", got.pre[b], want.pre[b]},
				{"nino", got.nino[b], want.nino[b]},
				{"long", got.long[b], want.long[b]},
			} {
				if f.got != f.want {
					t.Fatalf("%s: nb %d, block %d: %s %#x, piiCandsGo %#x", name, nb, b+1, f.name, f.got, f.want)
				}
			}
		}
		if got.few != want.few || got.work != want.work || got.marked != want.marked || got.any != want.any {
			t.Fatalf("%s: nb %d: few %#x work %#x marked %#x any %#x; piiCandsGo %#x %#x %#x %#x", name, nb,
				got.few, got.work, got.marked, got.any, want.few, want.work, want.marked, want.any)
		}
		if got.keyRun != want.keyRun || got.keys != want.keys {
			t.Fatalf("%s: nb %d, key run %d in: key run %d, keys %b; piiCandsGo %d, %b", name, nb, keyRun,
				got.keyRun, got.keys, want.keyRun, want.keys)
		}
	}
}

// TestPIICands holds piiCands to piiCandsGo on random bitmaps (each field
// sparse, dense or random, so that every condition meets both outcomes)
// and on the chunks of texts.
func TestPIICands(t *testing.T) {
	t.Logf("piiCands512: %v, piiCandsAVX2: %v; kernels tested: %d", hasPIICands512, hasPIICandsAVX2, len(piiCandsKernels()))
	// The offsets piiCands512 reads and writes.
	var v candVec
	if unsafe.Sizeof(piiBlock{}) != 96 || unsafe.Offsetof(v.few) != 768 || unsafe.Offsetof(v.work) != 776 ||
		unsafe.Offsetof(v.marked) != 784 || unsafe.Offsetof(v.any) != 792 || unsafe.Offsetof(v.keyRun) != 800 ||
		unsafe.Offsetof(v.keys) != 808 {
		t.Fatal("piiBlock or candVec changed: update pii_cands_amd64.s")
	}
	rng := rand.New(rand.NewPCG(19, 30))
	field := func() uint64 {
		switch rng.IntN(6) {
		case 0:
			return 0
		case 1:
			return ^uint64(0)
		case 2:
			return rng.Uint64() & rng.Uint64() & rng.Uint64()
		case 3:
			return rng.Uint64() | rng.Uint64() | rng.Uint64()
		case 4:
			return ^uint64(0) << rng.IntN(64) >> rng.IntN(64)
		}
		return rng.Uint64()
	}
	var m [trigChunk + 2]piiBlock
	for range 20000 {
		for b := range m {
			f := unsafe.Slice((*uint64)(unsafe.Pointer(&m[b])), unsafe.Sizeof(m[b])/8)
			for i := range f {
				f[i] = field()
			}
		}
		keyRun := 0
		if rng.IntN(2) == 0 {
			keyRun = rng.IntN(130)
		}
		checkPIICands(t, &m, 1+rng.IntN(trigChunk), keyRun)
	}
	for _, text := range []string{benchPrompt, benchNumbers, benchMix, strings64("1 "), strings64("a@b.io http://x.io/ ")} {
		ts := newTriggerScan(text)
		for cb := 0; 64*cb < len(text); cb += trigChunk {
			nb := min(trigChunk, (len(text)-64*cb+63)/64)
			ts.masksAt(max(cb-1, 0), ts.m[:nb+2])
			if cb == 0 {
				copy(ts.m[1:], ts.m[:nb+1])
				ts.m[0] = piiBlock{}
			}
			checkPIICands(t, &ts.m, nb, 0)
		}
	}
}

func strings64(unit string) string {
	b := make([]byte, 0, 64<<10)
	for len(b) < 64<<10 {
		b = append(b, unit...)
	}
	return string(b[:64<<10])
}

// FuzzPIICands holds piiCands to piiCandsGo on chunks whose bitmaps are
// the fuzzer's bytes (repeated to fill the chunk), with the chunk length
// and the key run before it from the first two bytes, and on the chunks
// of the bytes read as text.
func FuzzPIICands(f *testing.F) {
	f.Add([]byte("\x20\x05order #48213907 on 2024-06-03 for $129.99, (415) 555-2671 AB 12 34 56 C"))
	f.Add([]byte("\x03\x30\xff\x00\xff\x00\x01\x80"))
	f.Add([]byte("1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) < 3 {
			return
		}
		var m [trigChunk + 2]piiBlock
		raw := unsafe.Slice((*byte)(unsafe.Pointer(&m[0])), unsafe.Sizeof(m))
		for i := range raw {
			raw[i] = b[2+i%(len(b)-2)]
		}
		checkPIICands(t, &m, 1+int(b[0])%trigChunk, int(b[1]))
		text := string(b)
		ts := newTriggerScan(text)
		for cb := 0; 64*cb < len(text); cb += trigChunk {
			nb := min(trigChunk, (len(text)-64*cb+63)/64)
			ts.masksAt(max(cb-1, 0), ts.m[:nb+2])
			if cb == 0 {
				copy(ts.m[1:], ts.m[:nb+1])
				ts.m[0] = piiBlock{}
			}
			checkPIICands(t, &ts.m, nb, 0)
		}
	})
}

// TestPIIScansReused: a PII detector reuses the buffers of its trigger
// scans from text to text without clearing them (PII.scans); what it
// finds in a text is what a new detector finds, whatever it scanned
// before (long texts dense in candidates, then short ones, and back).
func TestPIIScansReused(t *testing.T) {
	p, err := NewPII(PIIConfig{})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(30, 19))
	units := []string{"1 ", "4111 1111 1111 1111 ", "(415) 555-2671 ", "a@b.io ", "http://x.io/ ", "AKIAIOSFODNN7EXAMPLE ",
		"AB 12 34 56 C ", "10.0.0.1 ", "de:ad:be:ef:00:01 ", "2024-06-03 ", "word ", "secret: wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY "}
	for range 400 {
		var b []byte
		for n := rng.IntN(5000); len(b) < n; {
			b = append(b, units[rng.IntN(len(units))]...)
		}
		text := string(b)
		got := p.Detect(text, nil)
		fresh, _ := NewPII(PIIConfig{})
		want := fresh.Detect(text, nil)
		if !slices.Equal(got, want) {
			t.Fatalf("%q: a reused detector found %v, a new one %v", text, got, want)
		}
	}
}

// TestPIIScansConcurrent: goroutines sharing a PII detector (as guards
// share a Scanner) each find in their texts what a new detector finds,
// the pooled buffers passing between them (run with -race in CI).
func TestPIIScansConcurrent(t *testing.T) {
	p, err := NewPII(PIIConfig{})
	if err != nil {
		t.Fatal(err)
	}
	texts := []string{benchPrompt, benchNumbers, benchMix, strings64("1 ")[:3000], "a@b.io (415) 555-2671", ""}
	want := make([][]Finding, len(texts))
	for i, s := range texts {
		fresh, _ := NewPII(PIIConfig{})
		want[i] = fresh.Detect(s, nil)
	}
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range 30 {
				i := (g + r) % len(texts)
				if got := p.Detect(texts[i], nil); !slices.Equal(got, want[i]) {
					errs <- fmt.Sprintf("goroutine %d, text %d: %v, a new detector %v", g, i, got, want[i])
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}
