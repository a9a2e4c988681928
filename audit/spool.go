package audit

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// The spool is a directory of fixed-size segment files, each mapped into
// memory (MAP_SHARED). Appending a frame is a copy into the mapping under a
// mutex: no system call on the hot path, yet the bytes are in the kernel's
// page cache the moment the copy ends, so they survive a crash (SIGKILL) of
// the process. A node crash needs fsync: in that mode appenders wait for a
// group commit (one fdatasync for every appender that arrived meanwhile).
//
// A frame is: u32 payload length, u32 CRC-32C of the payload, payload. The
// payload is a kind byte, a u8-length id, an i64 Unix-nanosecond time and
// the line. Length 0 means nothing was written there yet; a frame whose
// checksum fails ends the segment (a torn append: its caller never got an
// answer, so nothing was forwarded on its strength).

const (
	frameHeader = 8
	kindIntent  = 'I' // before forwarding; completed by a record with its id
	kindRecord  = 'R' // a sealed call record (shipped)
	kindCheck   = 'C' // a sealed checkpoint (shipped)
	sealMark    = 0xFFFFFFFF
	segPrefix   = "seg-"
	segSuffix   = ".wal"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrSpoolFull is returned by Begin when the spool has no room for a new
// call's intent (the sinks are behind); under on_full: deny the call is
// refused rather than forwarded without a durable record.
var ErrSpoolFull = errors.New("audit spool is full")

// ErrShareFull is returned when the caller group a line belongs to (an
// app, or the callers no app selected) already holds its share of the
// spool in lines no sink has yet: the others still get room. It wraps
// ErrSpoolFull, so on_full applies to it as to a full spool.
var ErrShareFull = fmt.Errorf("%w: this caller group's share of it is used up", ErrSpoolFull)

var errClosed = errors.New("audit pipeline is closed")

// noShare marks lines no caller group owns (checkpoints, recovery, capture):
// never bounded by a share, never counted in one.
const noShare = -1

// keyRun says which share owns a run of a segment's bytes: those from the
// previous run's end to end.
type keyRun struct {
	end uint32
	key int32 // index into spool.shareNames, or noShare
}

type segment struct {
	n       uint64
	path    string
	f       *os.File // nil for in-memory segments
	data    []byte
	end     atomic.Int64 // bytes published to readers
	sealed  atomic.Bool  // no more appends: readers go on to the next segment
	intents int          // intents here not yet completed (guarded by spool.mu)
	synced  int64        // bytes known on disk (guarded by spool.syncMu)
	// durable is what shippers may read in fsync mode: bytes on disk, so a
	// node crash cannot take back a line a sink already has.
	durable atomic.Int64
	// runs attribute the segment's frames to shares, in order; relIdx and
	// relOff say how far every shipper has passed (guarded by spool.mu).
	// Segments found at open have none: their bytes count in no share.
	runs    []keyRun
	relIdx  int
	relOff  uint32
	fmu     sync.Mutex // the file between a flusher's fdatasync and removal
	removed bool       // guarded by fmu
}

type spool struct {
	dir      string // "" in memory
	segBytes int64
	maxSegs  int
	fsync    bool

	mu   sync.Mutex
	segs []*segment // live segments, oldest first; the last is the one appended to
	pos  int64      // total bytes appended since open (fsync bookkeeping)

	syncMu   sync.Mutex
	syncCond *sync.Cond
	want     int64 // highest pos an appender waits for
	done     int64 // highest pos on disk
	syncErr  error
	closing  bool
	flusher  sync.WaitGroup
	notifyMu sync.Mutex
	notify   []chan struct{}

	// spare is the next segment, created and faulted in ahead of need by
	// a background goroutine so no appender pays for it.
	spare     chan *segment
	needSpare chan uint64
	spareDone sync.WaitGroup
	stopSpare bool // guarded by mu
	// spareAsked says a spare is on its way (guarded by mu): the appender
	// waits for it only then, and asks again after any failure.
	spareAsked bool

	// Shares (guarded by mu): the bytes each caller group has in the spool
	// that some sink has not passed yet, and the bound a new call's line
	// of that group must stay under.
	shares     map[string]int32
	shareNames []string
	held       []int64
	shareLimit func(name string) int64
	// cursors are the shippers' positions; every byte before the oldest is
	// released from its share.
	cursors []spoolPos
}

// spoolPos is a position in the spool: a segment and an offset in it.
type spoolPos struct {
	seg uint64
	off int64
}

// maxShares bounds the share table; share names are app names from the
// policy, so this is only a guard against unbounded growth.
const maxShares = 4096

// openSpool maps the segments found in dir (dir "" keeps them in memory)
// and starts a new one for appends; the old ones are sealed.
func openSpool(dir string, segBytes, maxBytes int64, fsync bool) (*spool, error) {
	s := &spool{dir: dir, segBytes: segBytes, maxSegs: int(maxBytes / segBytes), fsync: fsync, shares: map[string]int32{}}
	s.syncCond = sync.NewCond(&s.syncMu)
	if s.maxSegs < 3 {
		s.maxSegs = 3 // one for new calls, one being shipped, one kept for completions
	}
	if dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("audit spool %s: %w", dir, err)
		}
		names, err := filepath.Glob(filepath.Join(dir, segPrefix+"*"+segSuffix))
		if err != nil {
			return nil, err
		}
		var ns []uint64
		for _, p := range names {
			b := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(p), segPrefix), segSuffix)
			n, err := strconv.ParseUint(b, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("audit spool %s: unexpected file %s", dir, p)
			}
			ns = append(ns, n)
		}
		slices.Sort(ns)
		for _, n := range ns {
			seg, err := s.mapSegment(n, false)
			if err != nil {
				s.unmapAll()
				return nil, err
			}
			seg.end.Store(scanEnd(seg.data))
			seg.sealed.Store(true)
			seg.synced = seg.end.Load()
			seg.durable.Store(seg.synced)
			s.segs = append(s.segs, seg)
		}
	}
	next := uint64(1)
	if len(s.segs) > 0 {
		next = s.segs[len(s.segs)-1].n + 1
	}
	seg, err := s.mapSegment(next, true)
	if err != nil {
		s.unmapAll()
		return nil, err
	}
	s.segs = append(s.segs, seg)
	if fsync {
		s.flusher.Add(1)
		go s.flushLoop()
	}
	s.spare, s.needSpare = make(chan *segment, 1), make(chan uint64, 1)
	s.spareDone.Add(1)
	go s.prepareSpares()
	s.needSpare <- seg.n + 1
	s.spareAsked = true
	return s, nil
}

func (s *spool) prepareSpares() {
	defer s.spareDone.Done()
	for n := range s.needSpare {
		seg, err := s.mapSegment(n, true)
		if err != nil {
			seg = nil // the appender tries itself and reports the error
		}
		s.spare <- seg
	}
}

// nextSegment returns segment n: the spare (the preparer is always making
// exactly the one after the current segment; waiting for it never races a
// second creator for the file), or, if preparing failed, a new one.
func (s *spool) nextSegment(n uint64) (*segment, error) {
	var seg *segment
	if s.spareAsked {
		seg = <-s.spare
		s.spareAsked = false
	}
	if seg != nil && seg.n != n {
		seg.unmap()
		os.Remove(seg.path)
		seg = nil
	}
	var err error
	if seg == nil {
		seg, err = s.mapSegment(n, true)
	}
	next := n + 1
	if err != nil {
		next = n // ask for the one that failed again
	}
	if !s.stopSpare {
		s.needSpare <- next // cap 1: the preparer has delivered the last one
		s.spareAsked = true
	}
	return seg, err
}

func (s *spool) segPath(n uint64) string {
	return filepath.Join(s.dir, fmt.Sprintf("%s%016d%s", segPrefix, n, segSuffix))
}

// mapSegment maps segment n, creating it (blocks reserved with fallocate,
// so a full disk fails here rather than as SIGBUS on a later store).
func (s *spool) mapSegment(n uint64, create bool) (*segment, error) {
	if s.dir == "" {
		return &segment{n: n, data: make([]byte, s.segBytes)}, nil
	}
	p := s.segPath(n)
	flags := os.O_RDWR
	if create {
		flags |= os.O_CREATE | os.O_EXCL
	}
	f, err := os.OpenFile(p, flags, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit spool segment: %w", err)
	}
	size := s.segBytes
	if create {
		if err := unix.Fallocate(int(f.Fd()), 0, 0, size); err != nil {
			if !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.ENOSYS) {
				// ENOSPC above all: a sparse file would turn a full disk
				// into SIGBUS on a later store.
				f.Close()
				os.Remove(p)
				return nil, fmt.Errorf("audit spool segment %s: reserving %d bytes: %w", p, size, err)
			}
			if err := f.Truncate(size); err != nil { // filesystems without fallocate
				f.Close()
				os.Remove(p)
				return nil, fmt.Errorf("audit spool segment %s: %w", p, err)
			}
		}
		if s.fsync {
			if d, err := os.Open(s.dir); err == nil {
				_ = d.Sync() // the new name must survive a node crash too
				d.Close()
			}
		}
	} else {
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, err
		}
		size = st.Size()
		if size == 0 {
			f.Close()
			os.Remove(p)
			return &segment{n: n, path: p, data: nil}, nil
		}
	}
	mflags := unix.MAP_SHARED
	if create {
		mflags |= unix.MAP_POPULATE // fault the pages in now, not under the append lock
	}
	data, err := unix.Mmap(int(f.Fd()), 0, int(size), unix.PROT_READ|unix.PROT_WRITE, mflags)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("audit spool segment %s: mmap: %w", p, err)
	}
	if create {
		// A shared file mapping is populated read-only (the kernel tracks
		// dirty pages by write faults, ~4 µs each here): take every page's
		// write fault now — in the background for spares — rather than one
		// per page on the append path.
		for i := 0; i < len(data); i += os.Getpagesize() {
			data[i] = 0
		}
	}
	return &segment{n: n, path: p, f: f, data: data}, nil
}

// scanEnd returns the length of data's valid frames.
func scanEnd(data []byte) int64 {
	off := 0
	for off+frameHeader <= len(data) {
		n := binary.LittleEndian.Uint32(data[off:])
		if n == 0 || n == sealMark {
			break
		}
		if int(n) > len(data)-off-frameHeader {
			break
		}
		p := data[off+frameHeader : off+frameHeader+int(n)]
		if crc32.Checksum(p, castagnoli) != binary.LittleEndian.Uint32(data[off+4:]) || !validPayload(p) {
			break
		}
		off += frameHeader + int(n)
	}
	return int64(off)
}

// validPayload checks a payload's structure (kind, id length, time).
func validPayload(p []byte) bool {
	if len(p) < 2 || (p[0] != kindIntent && p[0] != kindRecord && p[0] != kindCheck) {
		return false
	}
	return len(p) >= 2+int(p[1])+8
}

// frame is one decoded spool frame; Line aliases the segment's memory.
type frame struct {
	kind byte
	id   string
	time time.Time
	line []byte
}

func frameSize(id string, line []byte) int { return frameHeader + 1 + 1 + len(id) + 8 + len(line) }

// decodeFrame reads the frame at data[off:] (known valid below end).
func decodeFrame(data []byte, off int64) (frame, int64) {
	n := int64(binary.LittleEndian.Uint32(data[off:]))
	p := data[off+frameHeader : off+frameHeader+n]
	idLen := int(p[1])
	f := frame{kind: p[0], id: string(p[2 : 2+idLen])}
	f.time = time.Unix(0, int64(binary.LittleEndian.Uint64(p[2+idLen:]))).UTC()
	f.line = p[2+idLen+8:]
	return f, off + frameHeader + n
}

// appendLocked writes a frame whose line is the concatenation of parts
// into the current segment, moving to a new one if it does not fit;
// reserve keeps the last segment for completions (Begin passes true). It
// returns the segment and the spool position after the frame.
// Room an append may take when it needs a new segment.
type room int

const (
	roomNew      room = iota // a new call's intent (and records of calls never forwarded): keeps the last segment free
	roomComplete             // the completion of a call whose intent is spooled: may use the last segment
	roomAny                  // recovery and checkpoints: may exceed the bound, so a full spool can still start and drain
)

// key is the share the line counts in (shareIndex, or noShare); a new
// call's line is refused with ErrShareFull when its share already holds
// its bound.
func (s *spool) appendLocked(kind byte, id string, t time.Time, r room, key int32, parts ...[]byte) (*segment, int64, error) {
	if len(s.segs) == 0 {
		return nil, 0, errClosed
	}
	if len(id) > 255 {
		id = id[:255]
	}
	size := frameHeader + 1 + 1 + len(id) + 8
	for _, p := range parts {
		size += len(p)
	}
	if int64(size) > s.segBytes/2 {
		return nil, 0, fmt.Errorf("audit record %s of %d bytes exceeds half a spool segment (%d bytes)", id, size, s.segBytes)
	}
	if key != noShare && r == roomNew && s.held[key] > 0 && s.held[key]+int64(size) > s.limitOf(key) {
		// A share that holds nothing may always take one line: every
		// group makes progress once its lines are delivered.
		return nil, 0, ErrShareFull
	}
	cur := s.segs[len(s.segs)-1]
	off := cur.end.Load()
	if off+int64(size) > int64(len(cur.data)) {
		switch {
		case r == roomNew && len(s.segs) >= s.maxSegs-1, r == roomComplete && len(s.segs) >= s.maxSegs:
			return nil, 0, ErrSpoolFull
		}
		next, err := s.nextSegment(cur.n + 1)
		if err != nil {
			return nil, 0, err
		}
		if off+4 <= int64(len(cur.data)) {
			binary.LittleEndian.PutUint32(cur.data[off:], sealMark)
		}
		cur.sealed.Store(true)
		s.segs = append(s.segs, next)
		s.pos += int64(len(cur.data)) - off
		cur, off = next, 0
	}
	d := cur.data[off : off+int64(size)]
	p := d[frameHeader:]
	p[0] = kind
	p[1] = byte(len(id))
	copy(p[2:], id)
	binary.LittleEndian.PutUint64(p[2+len(id):], uint64(t.UnixNano()))
	w := 2 + len(id) + 8
	for _, part := range parts {
		w += copy(p[w:], part)
	}
	binary.LittleEndian.PutUint32(d[4:], crc32.Checksum(p, castagnoli))
	binary.LittleEndian.PutUint32(d, uint32(len(p))) // last: a reader never sees a length without its bytes
	cur.end.Store(off + int64(size))
	s.pos += int64(size)
	if n := len(cur.runs); n > 0 && cur.runs[n-1].key == key {
		cur.runs[n-1].end = uint32(off + int64(size))
	} else {
		cur.runs = append(cur.runs, keyRun{end: uint32(off + int64(size)), key: key})
	}
	if key != noShare {
		s.held[key] += int64(size)
	}
	return cur, s.pos, nil
}

// shareIndex returns the index of the share named name (an app, or "" for
// the callers no app selected), adding it on first use.
func (s *spool) shareIndex(name string) int32 {
	if i, ok := s.shares[name]; ok {
		return i
	}
	if len(s.shareNames) >= maxShares {
		return s.shares[""] // cannot happen with a policy's app names: fold into the tightest share
	}
	i := int32(len(s.shareNames))
	s.shares[name] = i
	s.shareNames = append(s.shareNames, name)
	s.held = append(s.held, 0)
	return i
}

func (s *spool) limitOf(key int32) int64 {
	if s.shareLimit == nil {
		return 1<<63 - 1
	}
	return s.shareLimit(s.shareNames[key])
}

// heldBy returns the bytes share name holds (tests, metrics).
func (s *spool) heldBy(name string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i, ok := s.shares[name]; ok {
		return s.held[i]
	}
	return 0
}

// releaseLocked returns to their shares the bytes of every frame before
// pos, which every shipper has passed (delivered, or skipped as an intent).
func (s *spool) releaseLocked(pos spoolPos) {
	for _, seg := range s.segs {
		if seg.n > pos.seg {
			return
		}
		limit := uint32(1<<32 - 1) // a segment a shipper left: all of it
		if seg.n == pos.seg {
			limit = uint32(pos.off)
		}
		for seg.relIdx < len(seg.runs) {
			run := seg.runs[seg.relIdx]
			end := min(run.end, limit)
			if end <= seg.relOff {
				break
			}
			if run.key != noShare {
				s.held[run.key] -= int64(end - seg.relOff)
			}
			seg.relOff = end
			if end < run.end || seg.relIdx == len(seg.runs)-1 {
				break // the last run may still grow: stay on it
			}
			seg.relIdx++
		}
	}
}

// shipperPassed records that shipper i has passed everything before pos,
// and releases what every shipper has now passed.
func (s *spool) shipperPassed(i int, pos spoolPos) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i >= len(s.cursors) {
		return
	}
	s.cursors[i] = pos
	oldest := pos
	for _, c := range s.cursors {
		if c.seg < oldest.seg || (c.seg == oldest.seg && c.off < oldest.off) {
			oldest = c
		}
	}
	s.releaseLocked(oldest)
}

// wake tells the shippers there is something new.
func (s *spool) wake() {
	s.notifyMu.Lock()
	for _, c := range s.notify {
		select {
		case c <- struct{}{}:
		default:
		}
	}
	s.notifyMu.Unlock()
}

func (s *spool) subscribe() chan struct{} {
	c := make(chan struct{}, 1)
	s.notifyMu.Lock()
	s.notify = append(s.notify, c)
	s.notifyMu.Unlock()
	return c
}

// waitDurable blocks until everything up to pos is on disk (fsync mode).
func (s *spool) waitDurable(pos int64) error {
	if !s.fsync {
		return nil
	}
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	if pos > s.want {
		s.want = pos
		s.syncCond.Broadcast()
	}
	for s.done < pos && s.syncErr == nil && !s.closing {
		s.syncCond.Wait()
	}
	return s.syncErr // closing: unmapAll syncs every segment
}

// flushLoop is the group commit: one fdatasync per segment with unsynced
// bytes covers every appender waiting at that moment.
func (s *spool) flushLoop() {
	defer s.flusher.Done()
	for {
		s.syncMu.Lock()
		for s.want <= s.done && !s.closing {
			s.syncCond.Wait()
		}
		if s.closing && s.want <= s.done {
			s.syncMu.Unlock()
			return
		}
		s.syncMu.Unlock()

		s.mu.Lock()
		target := s.pos
		segs := slices.Clone(s.segs)
		s.mu.Unlock()
		var err error
		for _, seg := range segs {
			end := seg.end.Load()
			s.syncMu.Lock()
			dirty := end > seg.synced
			s.syncMu.Unlock()
			if !dirty || seg.f == nil {
				continue
			}
			seg.fmu.Lock()
			if !seg.removed { // removed: every sink had it, nothing left to make durable
				if e := unix.Fdatasync(int(seg.f.Fd())); e != nil && err == nil {
					err = fmt.Errorf("audit spool fsync %s: %w", seg.path, e)
				}
			}
			seg.fmu.Unlock()
			s.syncMu.Lock()
			seg.synced = end
			s.syncMu.Unlock()
			seg.durable.Store(end)
		}
		s.syncMu.Lock()
		if err != nil {
			s.syncErr = err
		}
		if target > s.done {
			s.done = target
		}
		s.syncCond.Broadcast()
		s.syncMu.Unlock()
		s.wake() // shippers read only durable bytes in this mode
	}
}

// removeBefore drops sealed segments older than n that hold no open
// intents (every sink has read past them).
func (s *spool) removeBefore(n uint64) {
	s.mu.Lock()
	var drop []*segment
	keep := s.segs[:0]
	for i, seg := range s.segs {
		// Only a prefix goes: a segment with an open intent keeps every
		// later one, whose completions recovery needs to see.
		if len(keep) == 0 && seg.n < n && seg.intents == 0 && seg.sealed.Load() && i < len(s.segs)-1 {
			drop = append(drop, seg)
			continue
		}
		keep = append(keep, seg)
	}
	clear(s.segs[len(keep):])
	s.segs = keep
	s.mu.Unlock()
	for _, seg := range drop {
		seg.unmap()
		if seg.path != "" {
			os.Remove(seg.path)
		}
	}
}

// segmentAt returns the oldest live segment numbered n or later.
func (s *spool) segmentAt(n uint64) *segment {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, seg := range s.segs {
		if seg.n >= n {
			return seg
		}
	}
	return nil
}

// usedBytes is the size of the live segments.
func (s *spool) usedBytes() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	for _, seg := range s.segs {
		n += int64(len(seg.data))
	}
	return n
}

func (seg *segment) unmap() {
	seg.fmu.Lock()
	defer seg.fmu.Unlock()
	if seg.f != nil && !seg.removed {
		_ = unix.Munmap(seg.data)
		seg.f.Close()
	}
	seg.removed = true
	seg.data = nil
}

func (s *spool) close() error {
	s.mu.Lock()
	s.stopSpare = true
	close(s.needSpare)
	s.mu.Unlock()
	s.spareDone.Wait()
	select {
	case seg := <-s.spare:
		if seg != nil {
			seg.unmap()
			if seg.path != "" {
				os.Remove(seg.path)
			}
		}
	default:
	}
	if s.fsync {
		s.syncMu.Lock()
		s.closing = true
		s.syncCond.Broadcast()
		s.syncMu.Unlock()
		s.flusher.Wait()
	}
	s.unmapAll()
	return s.syncErr
}

func (s *spool) unmapAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, seg := range s.segs {
		if s.fsync && seg.f != nil {
			_ = unix.Fdatasync(int(seg.f.Fd()))
		}
		seg.unmap()
	}
	s.segs = nil
}
