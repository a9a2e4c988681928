package audit

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"
)

// HTTP sink body formats.
const (
	HTTPFormatJSONL     = "jsonl"      // one record per line (application/x-ndjson)
	HTTPFormatJSON      = "json"       // a JSON array of records
	HTTPFormatSplunkHEC = "splunk_hec" // {"time":…,"event":record} per line, Splunk's HTTP Event Collector
)

// HTTPSinkOptions configure NewHTTPSink.
type HTTPSinkOptions struct {
	URL    string
	Format string // HTTPFormatJSONL (default), HTTPFormatJSON or HTTPFormatSplunkHEC
	// AuthHeader, when set, is sent with the value AuthValue (Splunk HEC:
	// "Authorization" and "Splunk <token>"). The caller reads the value
	// from the environment, never from a config file.
	AuthHeader string
	AuthValue  string
	Timeout    time.Duration // per POST; default 10 s
	// Client overrides the HTTP client (tests, custom TLS); its Timeout is
	// left alone, Timeout above bounds each POST through the context.
	Client *http.Client
}

// NewHTTPSink returns a sink that POSTs each batch to opts.URL.
func NewHTTPSink(opts HTTPSinkOptions) (Sink, error) {
	u, err := url.Parse(opts.URL)
	if err != nil {
		return nil, fmt.Errorf("audit http sink: url %q: %w", opts.URL, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("audit http sink: url %q: want http:// or https:// and a host", opts.URL)
	}
	if opts.Format == "" {
		opts.Format = HTTPFormatJSONL
	}
	var ctype string
	switch opts.Format {
	case HTTPFormatJSONL:
		ctype = "application/x-ndjson"
	case HTTPFormatJSON, HTTPFormatSplunkHEC:
		ctype = "application/json"
	default:
		return nil, fmt.Errorf("audit http sink %s: format %q: want jsonl, json or splunk_hec", opts.URL, opts.Format)
	}
	if (opts.AuthHeader == "") != (opts.AuthValue == "") {
		return nil, fmt.Errorf("audit http sink %s: auth header %q needs a value and a value needs a header", opts.URL, opts.AuthHeader)
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.Client == nil {
		opts.Client = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	}
	return &httpSink{o: opts, ctype: ctype}, nil
}

type httpSink struct {
	o     HTTPSinkOptions
	ctype string
	mu    sync.Mutex
	buf   bytes.Buffer // reused between batches
}

func (s *httpSink) Name() string { return "http" }

func (s *httpSink) Write(ctx context.Context, batch []Entry) error {
	if len(batch) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf.Reset()
	s.encode(&s.buf, batch)
	ctx, cancel := context.WithTimeout(ctx, s.o.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.o.URL, bytes.NewReader(s.buf.Bytes()))
	if err != nil {
		return fmt.Errorf("audit http sink %s: %w", s.o.URL, err)
	}
	req.Header.Set("Content-Type", s.ctype)
	if s.o.AuthHeader != "" {
		req.Header.Set(s.o.AuthHeader, s.o.AuthValue)
	}
	resp, err := s.o.Client.Do(req)
	if err != nil {
		return fmt.Errorf("audit http sink: POST %d records: %w", len(batch), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
		return fmt.Errorf("audit http sink %s: POST %d records: status %d: %q", s.o.URL, len(batch), resp.StatusCode, body)
	}
	// Drain (bounded) so the connection is reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return nil
}

func (s *httpSink) encode(b *bytes.Buffer, batch []Entry) {
	switch s.o.Format {
	case HTTPFormatJSON:
		b.WriteByte('[')
		for i, e := range batch {
			if i > 0 {
				b.WriteByte(',')
			}
			b.Write(e.Line)
		}
		b.WriteString("]\n")
	case HTTPFormatSplunkHEC:
		var num []byte
		for _, e := range batch {
			b.WriteString(`{"time":`)
			// Seconds with millisecond precision, as HEC documents it.
			num = strconv.AppendFloat(num[:0], float64(e.Time.UnixMilli())/1000, 'f', 3, 64)
			b.Write(num)
			b.WriteString(`,"event":`)
			b.Write(e.Line)
			b.WriteString("}\n")
		}
	default:
		for _, e := range batch {
			b.Write(e.Line)
			b.WriteByte('\n')
		}
	}
}

func (s *httpSink) Close() error {
	if t, ok := s.o.Client.Transport.(*http.Transport); ok {
		t.CloseIdleConnections()
	}
	return nil
}
