package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

const (
	cwTestKey    = "AKIDWARDENTEST"
	cwTestSecret = "warden-test-secret"
	cwTestRegion = "eu-west-1"
)

type cwEvent struct {
	Timestamp int64  `json:"timestamp"`
	Message   string `json:"message"`
}

type cwPut struct {
	Group, Stream string
	Events        []cwEvent
}

// fakeCloudWatch speaks enough of the CloudWatch Logs JSON 1.1 protocol
// for the sink, checks every request's SigV4 signature and enforces the
// PutLogEvents limits the real service enforces.
type fakeCloudWatch struct {
	t         *testing.T
	mu        sync.Mutex
	puts      []cwPut
	creates   int
	streamErr string // CreateLogStream answers this error type once set
	putErr    string // the next PutLogEvents answers this error type
}

func (f *fakeCloudWatch) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if err := verifySigV4(r, body); err != nil {
		f.t.Errorf("request not signed correctly: %v", err)
		f.fail(w, http.StatusForbidden, "InvalidSignatureException", err.Error())
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/x-amz-json-1.1" {
		f.t.Errorf("content type %q, want application/x-amz-json-1.1", ct)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch target := r.Header.Get("X-Amz-Target"); target {
	case "Logs_20140328.CreateLogStream":
		f.creates++
		if f.streamErr != "" {
			f.fail(w, http.StatusBadRequest, f.streamErr, "stream exists")
			return
		}
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		io.WriteString(w, "{}")
	case "Logs_20140328.PutLogEvents":
		if f.putErr != "" {
			f.fail(w, http.StatusBadRequest, f.putErr, "no such stream")
			f.putErr = ""
			return
		}
		var in struct {
			LogGroupName, LogStreamName string
			LogEvents                   []cwEvent
		}
		if err := json.Unmarshal(body, &in); err != nil {
			f.fail(w, http.StatusBadRequest, "SerializationException", err.Error())
			return
		}
		if err := checkPutLimits(in.LogEvents); err != nil {
			f.t.Errorf("PutLogEvents over the limits: %v", err)
			f.fail(w, http.StatusBadRequest, "InvalidParameterException", err.Error())
			return
		}
		f.puts = append(f.puts, cwPut{in.LogGroupName, in.LogStreamName, in.LogEvents})
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		io.WriteString(w, `{"nextSequenceToken":"1"}`)
	default:
		f.fail(w, http.StatusBadRequest, "UnknownOperationException", target)
	}
}

func (f *fakeCloudWatch) fail(w http.ResponseWriter, status int, typ, msg string) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-ErrorType", typ)
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"__type": typ, "message": msg})
}

func checkPutLimits(events []cwEvent) error {
	if len(events) == 0 || len(events) > 10000 {
		return fmt.Errorf("%d events", len(events))
	}
	size := 0
	for i, e := range events {
		size += len(e.Message) + 26
		if len(e.Message)+26 > 256*1024 {
			return fmt.Errorf("event %d: %d bytes", i, len(e.Message))
		}
		if i > 0 && e.Timestamp < events[i-1].Timestamp {
			return fmt.Errorf("event %d out of order: %d after %d", i, e.Timestamp, events[i-1].Timestamp)
		}
	}
	if size > 1048576 {
		return fmt.Errorf("%d bytes", size)
	}
	if span := events[len(events)-1].Timestamp - events[0].Timestamp; span > 24*3600*1000 {
		return fmt.Errorf("span %d ms", span)
	}
	return nil
}

// verifySigV4 signs a copy of r's signed headers again with the test
// credentials and compares the Authorization header.
func verifySigV4(r *http.Request, body []byte) error {
	auth := r.Header.Get("Authorization")
	cred := "AWS4-HMAC-SHA256 Credential=" + cwTestKey + "/"
	if !strings.HasPrefix(auth, cred) || !strings.Contains(auth, "/"+cwTestRegion+"/logs/aws4_request") {
		return fmt.Errorf("authorization %q: want SigV4 for %s in %s, service logs", auth, cwTestKey, cwTestRegion)
	}
	when, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil {
		return fmt.Errorf("x-amz-date: %v", err)
	}
	_, signed, _ := strings.Cut(auth, "SignedHeaders=")
	signed, _, _ = strings.Cut(signed, ",")
	req, _ := http.NewRequest(r.Method, "http://"+r.Host+r.URL.RequestURI(), bytes.NewReader(body))
	for _, h := range strings.Split(signed, ";") {
		if h != "host" {
			req.Header[http.CanonicalHeaderKey(h)] = r.Header.Values(h)
		}
	}
	sum := sha256.Sum256(body)
	err = v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: cwTestKey, SecretAccessKey: cwTestSecret},
		req, hex.EncodeToString(sum[:]), "logs", cwTestRegion, when)
	if err != nil {
		return err
	}
	if got := req.Header.Get("Authorization"); got != auth {
		return fmt.Errorf("signature mismatch:\n got  %s\n want %s", auth, got)
	}
	return nil
}

func newTestCloudWatch(t *testing.T, opts CloudWatchSinkOptions) (*fakeCloudWatch, Sink) {
	t.Helper()
	f := &fakeCloudWatch{t: t}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	opts.LogGroup, opts.Region, opts.Endpoint = "/warden/audit", cwTestRegion, srv.URL
	opts.AccessKey, opts.SecretKey = cwTestKey, cwTestSecret
	opts.Timeout = 10 * time.Second
	s, err := NewCloudWatchSink(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return f, s
}

func TestCloudWatchSink(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	shuffled := testEntries(300, t0, 100)
	for i := range shuffled { // times out of spool order: every third one an hour earlier
		if i%3 == 0 {
			shuffled[i].Time = shuffled[i].Time.Add(-time.Hour)
		}
	}
	wide := testEntries(4, t0, 100)
	wide[2].Time = t0.Add(30 * time.Hour)
	wide[3].Time = t0.Add(31 * time.Hour)
	sameMilli := testEntries(5, t0, 50)
	for i := range sameMilli {
		sameMilli[i].Time = t0
	}
	for _, tc := range []struct {
		name     string
		batch    []Entry
		minCalls int
	}{
		{"25,000 records: at most 10,000 per call", manyEntries(25000, t0), 3},
		{"1.2 MB of lines: at most 1 MiB per call", testEntries(1200, t0, 1000), 2},
		{"unsorted times: sorted in each call", shuffled, 1},
		{"more than 24 h: split by span", wide, 2},
		{"same millisecond keeps spool order", sameMilli, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, s := newTestCloudWatch(t, CloudWatchSinkOptions{LogStream: "i-1"})
			if err := s.Write(context.Background(), tc.batch); err != nil {
				t.Fatal(err)
			}
			if len(f.puts) < tc.minCalls {
				t.Errorf("%d PutLogEvents calls, want at least %d", len(f.puts), tc.minCalls)
			}
			// Every record arrives once, byte for byte, with its time; in
			// time order across calls and spool order within a millisecond.
			want := slices.Clone(tc.batch)
			slices.SortStableFunc(want, func(a, b Entry) int { return a.Time.Compare(b.Time) })
			var got []cwEvent
			for _, p := range f.puts {
				if p.Group != "/warden/audit" || p.Stream != "i-1" {
					t.Errorf("put to %s/%s, want /warden/audit/i-1", p.Group, p.Stream)
				}
				got = append(got, p.Events...)
			}
			if len(got) != len(want) {
				t.Fatalf("%d events delivered, want %d", len(got), len(want))
			}
			for i := range want {
				if got[i].Message != string(want[i].Line) || got[i].Timestamp != want[i].Time.UnixMilli() {
					t.Fatalf("event %d = %d %.40s, want %d %.40s", i, got[i].Timestamp, got[i].Message, want[i].Time.UnixMilli(), want[i].Line)
				}
			}
			if f.creates != 1 {
				t.Errorf("CreateLogStream called %d times, want 1", f.creates)
			}
		})
	}
}

// manyEntries makes n small entries quickly (a few ms apart).
func manyEntries(n int, t0 time.Time) []Entry {
	out := make([]Entry, n)
	for i := range out {
		id := fmt.Sprintf("m%06d", i)
		out[i] = Entry{ID: id, Time: t0.Add(time.Duration(i) * 3 * time.Millisecond), Line: []byte(`{"id":"` + id + `"}`)}
	}
	return out
}

// TestCloudWatchSinkStream: an existing stream is fine, and a stream
// deleted under the sink is created again on the retry.
func TestCloudWatchSinkStream(t *testing.T) {
	f, s := newTestCloudWatch(t, CloudWatchSinkOptions{})
	f.streamErr = "ResourceAlreadyExistsException"
	batch := testEntries(3, time.Now(), 50)
	if err := s.Write(context.Background(), batch); err != nil {
		t.Fatalf("existing stream: %v", err)
	}
	f.putErr = "ResourceNotFoundException"
	if err := s.Write(context.Background(), batch); err == nil || !strings.Contains(err.Error(), "ResourceNotFound") {
		t.Fatalf("deleted stream: err = %v, want ResourceNotFoundException", err)
	}
	if err := s.Write(context.Background(), batch); err != nil {
		t.Fatalf("retry after the stream was deleted: %v", err)
	}
	if f.creates != 2 || len(f.puts) != 2 || f.puts[0].Stream != "warden" {
		t.Errorf("creates %d, puts %d (stream %q): want 2 creates, 2 puts to the default stream", f.creates, len(f.puts), f.puts[0].Stream)
	}
}

// TestCloudWatchSinkOversize: a line too long for one event is replaced
// by a stub naming it, and the others still go.
func TestCloudWatchSinkOversize(t *testing.T) {
	var told []string
	f, s := newTestCloudWatch(t, CloudWatchSinkOptions{OnOversize: func(id string, size int) { told = append(told, fmt.Sprint(id, size)) }})
	batch := testEntries(3, time.Now(), 100)
	batch[1] = Entry{ID: "big", Time: batch[1].Time, Line: []byte(`{"id":"big","pad":"` + strings.Repeat("y", 300<<10) + `"}`)}
	if err := s.Write(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(batch[1].Line)
	var stub struct {
		Oversize struct {
			ID     string `json:"id"`
			Bytes  int    `json:"bytes"`
			SHA256 string `json:"sha256"`
		} `json:"warden_oversize"`
	}
	ev := f.puts[0].Events
	if len(ev) != 3 || ev[0].Message != string(batch[0].Line) || ev[2].Message != string(batch[2].Line) {
		t.Fatalf("events %d: want all 3, the small ones intact", len(ev))
	}
	if err := json.Unmarshal([]byte(ev[1].Message), &stub); err != nil {
		t.Fatalf("stub %q: %v", ev[1].Message, err)
	}
	if o := stub.Oversize; o.ID != "big" || o.Bytes != len(batch[1].Line) || o.SHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("stub %+v, want id big, %d bytes, the line's sha256", o, len(batch[1].Line))
	}
	if want := fmt.Sprint("big", len(batch[1].Line)); len(told) != 1 || told[0] != want {
		t.Errorf("OnOversize told %v, want [%s]", told, want)
	}
}
