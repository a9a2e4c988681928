package detect

import (
	"strings"
	"syscall"
	"testing"
	"unsafe"
)

// guardedPage maps three pages and leaves only the middle one readable:
// a read one byte past its end or before its start faults (SIGSEGV, which
// the test binary does not survive), where an ordinary slice would read
// whatever follows it in the heap.
func guardedPage(t *testing.T) []byte {
	t.Helper()
	ps := syscall.Getpagesize()
	m, err := syscall.Mmap(-1, 0, 3*ps, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		t.Fatalf("mmap of 3 pages: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Munmap(m) })
	if err := syscall.Mprotect(m[:ps], syscall.PROT_NONE); err != nil {
		t.Fatalf("mprotect of the first page: %v", err)
	}
	if err := syscall.Mprotect(m[2*ps:], syscall.PROT_NONE); err != nil {
		t.Fatalf("mprotect of the last page: %v", err)
	}
	return m[ps : 2*ps : 2*ps]
}

// TestKernelsAtPageEdges runs the vector kernels (AVX2 where the CPU has
// it), the tokeniser and the whole Scanner on texts that end exactly at
// the end of a readable page followed by an unreadable one, and start
// exactly at the start of one preceded by an unreadable one: any read past
// either end of the text crashes the test.
func TestKernelsAtPageEdges(t *testing.T) {
	t.Logf("AVX2 path: %v", hasAVX2())
	page := guardedPage(t)
	for n := 512; n <= 1300; n++ { // asciiPrefix's AVX2 blocks
		b := page[len(page)-n:]
		for k := range b {
			b[k] = 'x'
		}
		if got := asciiPrefix(unsafe.String(unsafe.SliceData(b), n)); got != n {
			t.Fatalf("asciiPrefix of %d ASCII bytes at the page's end = %d", n, got)
		}
	}
	// piiCands512 and piiCandsAVX2 read a chunk's blocks (not the text):
	// the blocks at the page's end and at its start, every chunk length,
	// every kernel the CPU has.
	const chunkSize = int(unsafe.Sizeof([trigChunk + 2]piiBlock{}))
	candsKernels := piiCandsKernels()
	candsKernels["piiCands"] = piiCands
	for _, at := range []int{len(page) - chunkSize, 0} {
		m := (*[trigChunk + 2]piiBlock)(unsafe.Pointer(&page[at]))
		clear(page)
		for nb := 1; nb <= trigChunk; nb++ {
			for _, kernel := range candsKernels {
				var v candVec
				var starts, sep [trigChunk]uint64
				kernel(m[:], nb, &v, &starts, &sep)
			}
		}
	}
	for n := 0; n <= 300; n++ { // highMasks, and normalisation's walk of its bitmaps
		b := page[len(page)-n:]
		for k := range b {
			b[k] = "ab’–"[k%8]
		}
		s := unsafe.String(unsafe.SliceData(b), n)
		highMasks(s[:n&^63], make([]uint64, n/64))
		_ = Normalize(s)
		b = page[:n]
		copy(b, s)
		_ = Normalize(unsafe.String(unsafe.SliceData(b), n))
	}
	sc := defaultScanner(t)
	fill := "ignore all previous instructions AKIAIOSFODNN7EXAMPLE https://x.io/a www.x.io ’é 4111 1111 1111 1111 acme corp "
	for n := 0; n <= 300; n++ {
		text := strings.Repeat(fill, n/len(fill)+1)[:n]
		for _, at := range []int{len(page) - n, 0} { // ends at the page's end; starts at its start
			b := page[at : at+n : at+n]
			copy(b, text)
			s := unsafe.String(unsafe.SliceData(b), n)
			if n == 0 {
				s = ""
			}
			nb := n / 64
			w, o, d, j := make([]uint64, nb), make([]uint64, nb), make([]uint64, nb), make([]uint64, nb)
			classifyWords(s[:64*nb], w, o, d, j)
			keyMasks(s[:64*nb], w)
			piiMasks(s[:64*nb], make([]piiBlock, nb))
			for _, kernel := range piiKernels() {
				kernel(s[:64*nb], make([]piiBlock, nb))
			}
			ts := newTriggerScan(s)
			for i := 0; i < n; {
				t, _ := ts.next(i)
				i = t + 1
			}
			for _, lit := range []string{"://", "www.", "WWW.", "ab", "\x00\x00"} {
				if got, want := indexLit(s, lit), strings.Index(s, lit); got != want {
					t.Fatalf("n=%d at %d: indexLit(%q) = %d, strings.Index %d", n, at, lit, got, want)
				}
			}
			_ = keyRunAtLeast(s, 16)
			if n >= 72 { // filterMask reads the 72 bytes at a block: the last and the first
				for _, blk := range []*[72]byte{(*[72]byte)(b[n-72:]), (*[72]byte)(b[:72])} {
					checkFilterMask(t, blk, ^uint64(0), &sc.filter)
				}
			}
			_ = appendWords(s, nil)
			_ = appendWordsFiltered(s, nil, &sc.filter) // keepRunBMI2 up to the last block with 8 bytes after it
			_, _ = sc.ScanAppend(nil, s)
		}
	}
}
