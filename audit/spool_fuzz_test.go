package audit

import (
	"encoding/binary"
	"hash/crc32"
	"testing"
	"time"
)

// FuzzScanEnd feeds arbitrary segment bytes to recovery's frame scanner:
// it must never panic, and every frame below the end it reports must
// decode within the segment with a valid checksum.
func FuzzScanEnd(f *testing.F) {
	seg := make([]byte, 256)
	off := 0
	for i, line := range []string{`{"a":1}`, `{"seq":2}`} {
		id := "req-" + string(rune('a'+i))
		p := []byte{kindRecord, byte(len(id))}
		p = append(p, id...)
		p = binary.LittleEndian.AppendUint64(p, uint64(time.Unix(1, 0).UnixNano()))
		p = append(p, line...)
		binary.LittleEndian.PutUint32(seg[off:], uint32(len(p)))
		binary.LittleEndian.PutUint32(seg[off+4:], crc32.Checksum(p, castagnoli))
		copy(seg[off+frameHeader:], p)
		off += frameHeader + len(p)
	}
	f.Add(seg)
	f.Add(seg[:off-3])
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0, 'I'})
	f.Fuzz(func(t *testing.T, data []byte) {
		end := scanEnd(data)
		if end < 0 || end > int64(len(data)) {
			t.Fatalf("end %d outside %d bytes", end, len(data))
		}
		for o := int64(0); o < end; {
			n := int64(binary.LittleEndian.Uint32(data[o:]))
			p := data[o+frameHeader : o+frameHeader+n]
			if crc32.Checksum(p, castagnoli) != binary.LittleEndian.Uint32(data[o+4:]) {
				t.Fatalf("frame at %d below end has a bad checksum", o)
			}
			if !validPayload(p) {
				t.Fatalf("frame at %d below end is malformed", o)
			}
			_, next := decodeFrame(data, o)
			if next <= o {
				t.Fatal("no progress")
			}
			o = next
		}
	})
}

// FuzzDecodeRecord: any line either decodes or errors, never panics; a
// record it decodes encodes again to a line it decodes the same way.
func FuzzDecodeRecord(f *testing.F) {
	f.Add(string(callRecord(1).AppendJSON(nil)))
	f.Add(string(benchRecord().AppendJSON(nil)))
	f.Add(`{"v":2,"kind":"checkpoint"}`)
	f.Add(`{"tokens_in":null,"cost_usd":"x"}`)
	f.Add(`{"v":2,"request_id":"r","decision":"deny","count":42}`)
	f.Add(`{"count":-3}`)
	f.Add(`{"v":2,"request_id":"p","src_account":"222233334444","src_vpc":"vpc-1","src_vpce":"vpce-0a1b2c3d","upstream":"h","upstream_region":"us-east-1"}`)
	f.Fuzz(func(t *testing.T, line string) {
		r, err := DecodeRecord([]byte(line))
		if err != nil {
			return
		}
		r2, err := DecodeRecord(r.AppendJSON(nil))
		if err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		if r2.RequestID != r.RequestID || r2.App != r.App || r2.Usage != r.Usage || r2.Status != r.Status || r2.Calls() != r.Calls() || r2.Path != r.Path {
			t.Fatalf("round trip changed the record:\n%+v\n%+v", r, r2)
		}
	})
}
