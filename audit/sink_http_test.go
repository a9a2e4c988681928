package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestHTTPSink(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 250_000_000, time.UTC)
	batch := []Entry{
		{ID: "a", Time: t0, Line: []byte(`{"id":"a","n":1}`)},
		{ID: "b", Time: t0.Add(time.Second), Line: []byte(`{"id":"b","n":2}`)},
	}
	for _, tc := range []struct {
		name       string
		format     string
		authHeader string
		authValue  string
		wantType   string
		wantBody   string
	}{
		{"default is jsonl", "", "", "", "application/x-ndjson", "{\"id\":\"a\",\"n\":1}\n{\"id\":\"b\",\"n\":2}\n"},
		{"json array", "json", "X-Api-Key", "k1", "application/json", "[{\"id\":\"a\",\"n\":1},{\"id\":\"b\",\"n\":2}]\n"},
		{"splunk hec", "splunk_hec", "Authorization", "Splunk tok", "application/json",
			"{\"time\":1796119200.250,\"event\":{\"id\":\"a\",\"n\":1}}\n{\"time\":1796119201.250,\"event\":{\"id\":\"b\",\"n\":2}}\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			type got struct {
				method, ctype, auth string
				body                []byte
			}
			reqs := make(chan got, 1)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				auth := ""
				if tc.authHeader != "" {
					auth = r.Header.Get(tc.authHeader)
				}
				reqs <- got{r.Method, r.Header.Get("Content-Type"), auth, b}
			}))
			defer srv.Close()
			s, err := NewHTTPSink(HTTPSinkOptions{URL: srv.URL + "/ingest", Format: tc.format, AuthHeader: tc.authHeader, AuthValue: tc.authValue})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if err := s.Write(context.Background(), batch); err != nil {
				t.Fatal(err)
			}
			g := <-reqs
			if g.method != http.MethodPost || g.ctype != tc.wantType || g.auth != tc.authValue {
				t.Errorf("method %s, content type %q, auth %q; want POST, %q, %q", g.method, g.ctype, g.auth, tc.wantType, tc.authValue)
			}
			if string(g.body) != tc.wantBody {
				t.Errorf("body:\n%s\nwant:\n%s", g.body, tc.wantBody)
			}
			// Every format must decode as JSON, record bytes intact.
			dec := json.NewDecoder(bytes.NewReader(g.body))
			for dec.More() {
				var v any
				if err := dec.Decode(&v); err != nil {
					t.Fatalf("body is not JSON: %v", err)
				}
			}
		})
	}
}

func TestHTTPSinkErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/slow":
			select {
			case <-r.Context().Done():
			case <-time.After(2 * time.Second):
			}
		default:
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, "overloaded "+strings.Repeat("z", 500))
		}
	}))
	defer srv.Close()
	batch := []Entry{{ID: "a", Line: []byte(`{}`)}}

	s, err := NewHTTPSink(HTTPSinkOptions{URL: srv.URL + "/busy"})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Write(context.Background(), batch)
	if err == nil || !strings.Contains(err.Error(), "status 503") || !strings.Contains(err.Error(), "overloaded") {
		t.Fatalf("err = %v, want the status and body", err)
	}
	if strings.Count(err.Error(), "z") > 200 {
		t.Errorf("error quotes more than 200 bytes of body: %d", len(err.Error()))
	}

	s, err = NewHTTPSink(HTTPSinkOptions{URL: srv.URL + "/slow", Timeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Write(context.Background(), batch); err == nil || !strings.Contains(err.Error(), "deadline") {
		t.Fatalf("err = %v, want the timeout", err)
	}

	for _, opts := range []HTTPSinkOptions{
		{URL: "ftp://example.com/"},
		{URL: "http://127.0.0.1/", Format: "xml"},
		{URL: "http://127.0.0.1/", AuthHeader: "Authorization"},
	} {
		if _, err := NewHTTPSink(opts); err == nil {
			t.Errorf("NewHTTPSink(%+v) = nil error", opts)
		}
	}
}
