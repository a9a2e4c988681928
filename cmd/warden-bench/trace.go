package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/warden-egress/warden/internal/calltrace"
)

// cmdTrace prints where the slowest calls' time went in execution traces
// taken from a Warden run with --pprof (GET /debug/pprof/trace).
func cmdTrace(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("warden-bench trace", flag.ContinueOnError)
	fs.SetOutput(stderr)
	q := fs.Float64("quantile", 0.99, "the calls at or above this quantile of latency are the tail")
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: warden-bench trace [--quantile Q] TRACE...\n\n"+
			"Reads Go execution traces of a Warden run with --pprof (curl ADMIN/debug/pprof/trace?seconds=N) and compares\n"+
			"the slowest calls with those around the median: time per pipeline stage, per goroutine state, and GC overlap.\n"+
			"Several files are read as one sample.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return errors.New("no trace file given")
	}
	return summarizeTraces(stdout, "calls", fs.Args(), *q)
}

func summarizeTraces(w io.Writer, title string, files []string, q float64) error {
	s, err := readTraces(files, q)
	if err != nil {
		return err
	}
	s.Format(w, title)
	return nil
}

// readTraces reads trace files as one sample of calls and summarizes it.
func readTraces(files []string, q float64) (*calltrace.Summary, error) {
	var all []*calltrace.Trace
	for _, p := range files {
		f, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		t, err := calltrace.Read(f)
		_ = f.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		all = append(all, t)
	}
	return calltrace.Summarize(all, q)
}

// traceFetch is an execution trace being taken from a Warden admin
// listener into a file.
type traceFetch struct {
	path string
	done chan error
}

func startTrace(ctx context.Context, admin string, d time.Duration, path string) *traceFetch {
	t := &traceFetch{path: path, done: make(chan error, 1)}
	go func() { t.done <- fetchTrace(ctx, admin, d, path) }()
	return t
}

// startProfile fetches a CPU profile of d from admin into path meanwhile.
func startProfile(ctx context.Context, admin string, d time.Duration, path string) *traceFetch {
	t := &traceFetch{path: path, done: make(chan error, 1)}
	go func() {
		t.done <- fetchAdmin(ctx, admin, fmt.Sprintf("/debug/pprof/profile?seconds=%d", max(1, int(d/time.Second))), path)
	}()
	return t
}

func (t *traceFetch) wait() error { return <-t.done }

func fetchTrace(ctx context.Context, admin string, d time.Duration, path string) error {
	return fetchAdmin(ctx, admin, fmt.Sprintf("/debug/pprof/trace?seconds=%d", max(1, int(d/time.Second))), path)
}

// fetchAdmin saves what GET admin+path answers into file (0600); an
// answer other than 200 is an error naming --pprof, which serves them.
func fetchAdmin(ctx context.Context, admin, path, file string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+admin+path, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s from %s: %w", path, admin, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("GET %s from %s: %s: %s (is Warden running with --pprof?)", path, admin, resp.Status, b)
	}
	f, err := os.OpenFile(file, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		_ = f.Close()
		return fmt.Errorf("GET %s from %s: %w", path, admin, err)
	}
	return f.Close()
}
