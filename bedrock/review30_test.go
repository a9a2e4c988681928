package bedrock

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// Review of EventExtractor (issue 19): a stream guard extracts every event
// with one EventExtractor but into the Extracted of each held event, and
// keeps those while later events are extracted. Nothing an Extract returns
// may alias the extractor's own buffers (path, scratch) or the payload:
// TestReview30ExtractorResultsKept extracts every event of the stream
// corpora into its own Extracted with one extractor, scribbles over each
// payload after its call, and compares every result, after all the
// events, with ExtractStreamEvent's of an untouched copy.
func TestReview30ExtractorResultsKept(t *testing.T) {
	var x EventExtractor
	type kept struct {
		name       string
		op         Operation
		family, ev string
		payload    []byte
		got        *Extracted
		err        error
	}
	var all []kept
	for _, c := range extractCases {
		if c.kind != "stream" && c.kind != "chunks" {
			continue
		}
		data, err := os.ReadFile(filepath.Join("testdata", "extract", c.file))
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range readEvents(t, c, data) {
			buf := bytes.Clone(ev.Payload)
			dst := new(Extracted)
			xerr := x.Extract(dst, c.op, c.family, ev.Type, buf)
			for i := range buf {
				buf[i] = '#'
			}
			all = append(all, kept{c.file + " " + ev.Type, c.op, c.family, ev.Type, ev.Payload, dst, xerr})
		}
	}
	if len(all) < 20 {
		t.Fatalf("only %d events", len(all))
	}
	for _, k := range all {
		want, wantErr := ExtractStreamEvent(k.op, k.family, k.ev, k.payload)
		if (k.err == nil) != (wantErr == nil) {
			t.Fatalf("%s: error %v, want %v", k.name, k.err, wantErr)
		}
		if !sameExtracted(*k.got, want) {
			t.Fatalf("%s: kept %+v\nwant %+v", k.name, *k.got, want)
		}
	}
}
