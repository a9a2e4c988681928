package main

// warden-bench streams: what N ConverseStreams held open at once cost one
// Warden (issue 19: 10,000 in ≤ 500 MB RSS, back to baseline after). The
// stand-in answers each stream's first text at once and holds it open until
// released; the bench opens N streams over HTTP/1.1 (one connection each,
// as SDK clients do), reads Warden's RSS (/proc) and Go heap and goroutines
// (/metrics) with all of them open, releases them, checks every stream ends
// whole, and reads the same numbers again.

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/warden-egress/warden/bedrock"
)

type streamsOptions struct {
	n, ramp    int
	wardenBin  string
	goMemLimit string
	json       bool
	profileDir string
	hold       time.Duration
}

// streamsLimits is the connection-limit profile the scenario runs with:
// every stream is one client connection from 127.0.0.1.
const streamsLimits = `limits:
  max_connections: ${MAX}
  max_connections_per_source: ${MAX}
`

// streamsReading is one look at Warden's process.
type streamsReading struct {
	RSSKiB       int64 `json:"rss_kib"`
	HWMKiB       int64 `json:"rss_peak_kib"`
	HeapInuse    int64 `json:"go_heap_inuse_bytes"`
	StackInuse   int64 `json:"go_stack_inuse_bytes"`
	Goroutines   int64 `json:"go_goroutines"`
	OpenStreams  int   `json:"open_streams"`
	Connections  int64 `json:"fds"`
	UnixMilli    int64 `json:"unix_ms"`
	StandinHolds int   `json:"standin_holds"`
}

type streamsReport struct {
	Streams    int            `json:"streams"`
	Limits     string         `json:"limits"`
	GoMemLimit string         `json:"gomemlimit,omitempty"`
	Baseline   streamsReading `json:"baseline"`
	Open       streamsReading `json:"open"`
	After      streamsReading `json:"after"`
	// Collected is After once Warden ran two garbage collections (its
	// heap profile endpoint with gc=1): the heap back at its live size.
	Collected      streamsReading `json:"after_gc"`
	PerStreamKiB   float64        `json:"rss_per_stream_kib"`
	PerStreamHeap  float64        `json:"heap_per_stream_bytes"`
	OpenSeconds    float64        `json:"seconds_to_open_all"`
	EndedWhole     int            `json:"streams_ended_whole"`
	RSSTargetMB    float64        `json:"rss_target_mb_for_10k"`
	ProjectedMB10k float64        `json:"projected_rss_mb_for_10k"`
}

func cmdBenchStreams(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("warden-bench streams", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o streamsOptions
	fs.IntVar(&o.n, "n", 10000, "ConverseStreams to hold open at once")
	fs.IntVar(&o.ramp, "ramp", 200, "streams opened concurrently while ramping up")
	fs.DurationVar(&o.hold, "hold", 2*time.Second, "how long to hold them all open before reading and releasing")
	fs.StringVar(&o.wardenBin, "warden-bin", "", "the warden binary (default: go build ./cmd/warden)")
	fs.StringVar(&o.goMemLimit, "gomemlimit", "", "GOMEMLIMIT for Warden's process (e.g. 400MiB: the Go runtime's soft memory limit, as a container would set it)")
	fs.BoolVar(&o.json, "json", false, "print JSON instead of a table")
	fs.StringVar(&o.profileDir, "profile", "", "run Warden with --pprof and save its heap profile and goroutine stacks, taken while every stream is open, into this directory")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.n < 1 || o.ramp < 1 {
		return errors.New("--n and --ramp must be positive")
	}
	// Each stream is a client socket here and one in Warden (its upstream
	// streams share a few HTTP/2 connections, as to Bedrock).
	if err := raiseNoFile(uint64(o.n + 1024)); err != nil {
		return fmt.Errorf("%d streams need %d open files per process: %w", o.n, o.n+1024, err)
	}
	dir, err := os.MkdirTemp("", "warden-bench-streams-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	tlsDir := filepath.Join(dir, "standin-tls")
	standin, err := startChild(ctx, "stand-in", "_standin", "--tls", tlsDir)
	if err != nil {
		return err
	}
	defer standin.stop()
	ctl, err := tlsClient(filepath.Join(tlsDir, "ca.crt"))
	if err != nil {
		return err
	}
	env := &wrkEnv{o: &wrkOptions{pprof: true}, dir: dir, standin: standin, extraEnv: []string{"SSL_CERT_FILE=" + filepath.Join(tlsDir, "ca.crt")}, urls: map[string]string{}, procs: map[string]*exec.Cmd{}, admin: map[string]string{}}
	defer env.close()
	if o.goMemLimit != "" {
		env.extraEnv = append(env.extraEnv, "GOMEMLIMIT="+o.goMemLimit)
	}
	bin := o.wardenBin
	if bin == "" {
		if bin, err = buildWarden(ctx, dir); err != nil {
			return err
		}
	}
	limits := strings.ReplaceAll(streamsLimits, "${MAX}", strconv.Itoa(o.n+64))
	if err := env.startWardenWith(ctx, bin, wmWarden, limits); err != nil {
		return err
	}
	w := env.procs[wmWarden]
	base := env.urls[wmWarden]
	admin := env.admin[wmWarden]

	tr := &http.Transport{
		MaxIdleConnsPerHost: -1, // every stream on its own connection; none kept after
		DisableKeepAlives:   true,
		DialContext:         (&net.Dialer{Timeout: 30 * time.Second}).DialContext,
		DisableCompression:  true,
	}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	body := `{"messages":[{"role":"user","content":[{"text":"Summarise the review in three bullet points."}]}],"inferenceConfig":{"maxTokens":256}}`
	url := base + fmt.Sprintf("/model/%s/converse-stream", benchModel)

	// A few streams first, opened and ended, so the baseline has every
	// lazily built pool and cache.
	warm := newStreamSet(o.n)
	if err := warm.open(ctx, hc, url, body, min(16, o.n), min(16, o.ramp)); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	if err := releaseStandin(ctx, ctl, standin.URL); err != nil {
		return err
	}
	if err := warm.wait(); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	if err := restartStandinHolds(ctx, ctl, standin.URL); err != nil {
		return err
	}
	time.Sleep(time.Second)
	rep := &streamsReport{Streams: o.n, GoMemLimit: o.goMemLimit, Limits: strings.TrimSpace(strings.ReplaceAll(limits, "\n", " ")), RSSTargetMB: 500}
	if rep.Baseline, err = readWarden(ctx, w.Process.Pid, admin); err != nil {
		return err
	}

	set := newStreamSet(o.n)
	start := time.Now()
	if err := set.open(ctx, hc, url, body, o.n, o.ramp); err != nil {
		return err
	}
	rep.OpenSeconds = time.Since(start).Seconds()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(o.hold):
	}
	if rep.Open, err = readWarden(ctx, w.Process.Pid, admin); err != nil {
		return err
	}
	rep.Open.OpenStreams = set.openCount()
	rep.Open.StandinHolds = standinHolds(ctx, ctl, standin.URL)
	if o.profileDir != "" {
		if err := saveProfiles(ctx, admin, o.profileDir); err != nil {
			return err
		}
	}
	if err := releaseStandin(ctx, ctl, standin.URL); err != nil {
		return err
	}
	if err := set.wait(); err != nil {
		return err
	}
	rep.EndedWhole = set.whole()
	// Give Warden's connections time to close and its GC a cycle.
	deadline := time.Now().Add(15 * time.Second)
	for {
		if rep.After, err = readWarden(ctx, w.Process.Pid, admin); err != nil {
			return err
		}
		if rep.After.Goroutines <= rep.Baseline.Goroutines+8 || time.Now().After(deadline) {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	// What the heap holds once collected: back at the baseline unless
	// something of the ended streams is still referenced. Twice: a
	// sync.Pool keeps what it holds through one collection.
	for range 2 {
		if err := fetchAdmin(ctx, admin, "/debug/pprof/heap?gc=1", filepath.Join(dir, "heap-after.pb.gz")); err != nil {
			return err
		}
	}
	if rep.Collected, err = readWarden(ctx, w.Process.Pid, admin); err != nil {
		return err
	}
	rep.PerStreamKiB = float64(rep.Open.RSSKiB-rep.Baseline.RSSKiB) / float64(o.n)
	rep.PerStreamHeap = float64(rep.Open.HeapInuse-rep.Baseline.HeapInuse) / float64(o.n)
	// The target is in MB (10^6 bytes); the table's columns are MiB.
	rep.ProjectedMB10k = (float64(rep.Baseline.RSSKiB) + rep.PerStreamKiB*10000) * 1024 / 1e6
	if o.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		printStreamsReport(stdout, rep)
	}
	if rep.EndedWhole != o.n {
		return fmt.Errorf("%d of %d streams ended whole", rep.EndedWhole, o.n)
	}
	return nil
}

func printStreamsReport(out io.Writer, r *streamsReport) {
	fmt.Fprintf(out, "## warden-bench streams\n\n%d ConverseStreams held open at once through the warden binary (HTTP/1.1, one connection each; "+
		"PII guard on input and output, every type; audit spool + file sink); limits: %s; GOMEMLIMIT %q.\n\n", r.Streams, r.Limits, r.GoMemLimit)
	fmt.Fprintf(out, "| | RSS MiB | peak RSS MiB | Go heap in use MiB | goroutine stacks MiB | goroutines | fds |\n|---|---:|---:|---:|---:|---:|---:|\n")
	for _, row := range []struct {
		name string
		v    streamsReading
	}{{"baseline", r.Baseline}, {fmt.Sprintf("%d open", r.Open.OpenStreams), r.Open}, {"after release", r.After}, {"after release, collected", r.Collected}} {
		fmt.Fprintf(out, "| %s | %.1f | %.1f | %.1f | %.1f | %d | %d |\n", row.name, float64(row.v.RSSKiB)/1024, float64(row.v.HWMKiB)/1024,
			float64(row.v.HeapInuse)/(1<<20), float64(row.v.StackInuse)/(1<<20), row.v.Goroutines, row.v.Connections)
	}
	fmt.Fprintf(out, "\n- per stream: %.1f KiB RSS, %.1f KiB Go heap; opened all in %.1f s; %d/%d ended whole after release\n",
		r.PerStreamKiB, r.PerStreamHeap/1024, r.OpenSeconds, r.EndedWhole, r.Streams)
	verdict := "PASS"
	if r.ProjectedMB10k > r.RSSTargetMB {
		verdict = "FAIL"
	}
	fmt.Fprintf(out, "- %s target 10,000 streams ≤ %.0f MB RSS: projected %.0f MB = %.0f MiB (baseline + 10,000 × per stream)\n",
		verdict, r.RSSTargetMB, r.ProjectedMB10k, r.ProjectedMB10k*1e6/(1<<20))
}

// streamSet is N client streams.
type streamSet struct {
	mu      sync.Mutex
	opened  int
	ended   int
	g       errgroup.Group
	started chan struct{}
}

func newStreamSet(n int) *streamSet { return &streamSet{started: make(chan struct{}, n)} }

func (s *streamSet) openCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.opened
}

func (s *streamSet) whole() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ended
}

// open starts n streams, at most ramp at a time still waiting for their
// first text, and returns once all n have it.
func (s *streamSet) open(ctx context.Context, hc *http.Client, url, body string, n, ramp int) error {
	sem := make(chan struct{}, ramp)
	firstErr := make(chan error, 1)
	for i := 0; i < n; i++ {
		select {
		case sem <- struct{}{}:
		case err := <-firstErr:
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
		s.g.Go(func() error {
			err := s.one(ctx, hc, url, body, func() { <-sem })
			if err != nil {
				select {
				case firstErr <- err:
				default:
				}
				<-sem
			}
			return err
		})
	}
	for i := 0; i < ramp; i++ { // every stream has its first text
		select {
		case sem <- struct{}{}:
		case err := <-firstErr:
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (s *streamSet) wait() error { return s.g.Wait() }

// one makes one stream: first text → opened(), then reads to the end and
// counts it whole when the stream's messageStop and metadata came.
func (s *streamSet) one(ctx context.Context, hc *http.Client, url, body string, opened func()) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/vnd.amazon.eventstream")
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential="+benchAppKey+"/20260101/us-east-1/bedrock/aws4_request, SignedHeaders=host, Signature=00")
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return fmt.Errorf("stream: %s: %s", resp.Status, b)
	}
	fr := bedrock.NewFrameReader(bufio.NewReaderSize(resp.Body, 1024))
	first, stop, meta := false, false, false
	for {
		f, err := fr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("stream: %w", err)
		}
		switch f.EventType() {
		case "contentBlockDelta":
			if !first {
				first = true
				s.mu.Lock()
				s.opened++
				s.mu.Unlock()
				opened()
			}
		case "messageStop":
			stop = true
		case "metadata":
			meta = true
		}
		if f.MessageType() == "exception" {
			return fmt.Errorf("stream: exception %s", f.ExceptionType())
		}
	}
	if !first {
		return errors.New("stream ended before its first text")
	}
	if stop && meta {
		s.mu.Lock()
		s.ended++
		s.mu.Unlock()
	}
	return nil
}

func releaseStandin(ctx context.Context, ctl *http.Client, base string) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/release", nil)
	resp, err := ctl.Do(req)
	if err != nil {
		return fmt.Errorf("release the stand-in's streams: %w", err)
	}
	return resp.Body.Close()
}

// restartStandinHolds re-arms the stand-in after the warm-up's release.
func restartStandinHolds(ctx context.Context, ctl *http.Client, base string) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/rearm", nil)
	resp, err := ctl.Do(req)
	if err != nil {
		return fmt.Errorf("re-arm the stand-in: %w", err)
	}
	return resp.Body.Close()
}

func standinHolds(ctx context.Context, ctl *http.Client, base string) int {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/held", nil)
	resp, err := ctl.Do(req)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}

// readWarden reads RSS from /proc and the Go runtime's numbers from /metrics.
func readWarden(ctx context.Context, pid int, admin string) (streamsReading, error) {
	var r streamsReading
	r.UnixMilli = time.Now().UnixMilli()
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return r, err
	}
	for _, line := range strings.Split(string(st), "\n") {
		k, v, _ := strings.Cut(line, ":")
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		n, _ := strconv.ParseInt(f[0], 10, 64)
		switch k {
		case "VmRSS":
			r.RSSKiB = n
		case "VmHWM":
			r.HWMKiB = n
		}
	}
	if fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid)); err == nil {
		r.Connections = int64(len(fds))
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+admin+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return r, fmt.Errorf("warden /metrics: %w", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil {
			continue
		}
		switch name {
		case "go_goroutines":
			r.Goroutines = int64(f)
		case "go_memstats_heap_inuse_bytes":
			r.HeapInuse = int64(f)
		case "go_memstats_stack_inuse_bytes":
			r.StackInuse = int64(f)
		}
	}
	return r, sc.Err()
}

// raiseNoFile lifts this process's open-file limit (children inherit it).
func raiseNoFile(want uint64) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return err
	}
	if lim.Cur >= want {
		return nil
	}
	if lim.Max < want {
		return fmt.Errorf("the hard limit is %d (raise ulimit -Hn, or lower --n)", lim.Max)
	}
	lim.Cur = want
	return syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
}

// tlsClient trusts the CA in caFile (the stand-in's), for the bench's own
// calls to it.
func tlsClient(caFile string) (*http.Client, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no certificate", caFile)
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}, nil
}

// saveProfiles saves Warden's heap profile (heap.pb.gz: go tool pprof
// -sample_index=inuse_space) and its goroutines' stacks, counted
// (goroutines.txt), from its admin listener into dir.
func saveProfiles(ctx context.Context, admin, dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	for path, name := range map[string]string{"/debug/pprof/heap?gc=1": "heap.pb.gz", "/debug/pprof/goroutine?debug=1": "goroutines.txt"} {
		if err := fetchAdmin(ctx, admin, path, filepath.Join(dir, name)); err != nil {
			return err
		}
	}
	return nil
}
