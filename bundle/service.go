package bundle

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Paths the service answers.
const (
	PathBundle  = "/v1/bundle"  // GET ?fleet=&namespace=[&wait=30s], If-None-Match
	PathPublish = "/v1/bundles" // PUT a signed bundle
)

// FileName is the name a bundle of serial n has in a directory or under an
// S3 prefix; names sort by serial.
func FileName(serial uint64) string { return fmt.Sprintf("bundle-%020d.json", serial) }

// MaxWait bounds a long-poll.
const MaxWait = 5 * time.Minute

// Service serves the newest signed bundle for each Warden's scope from a
// directory, with ETag and long-poll, and accepts published bundles (PUT,
// verified against its trusted keys: the signature is the authorisation).
type Service struct {
	dir   string
	trust Trust
	log   *zap.Logger
	now   func() time.Time

	mu      sync.Mutex
	bundles []*Verified   // by serial, ascending
	changed chan struct{} // closed and replaced when bundles change
	stamp   string
}

// NewService serves the bundles in dir (files named FileName), checked
// against trust. It reads dir once; Run keeps re-reading it.
func NewService(dir string, trust Trust, log *zap.Logger) (*Service, error) {
	if len(trust) == 0 {
		return nil, errors.New("bundle service: no trusted keys")
	}
	if log == nil {
		log = zap.NewNop()
	}
	s := &Service{dir: dir, trust: trust, log: log, now: time.Now, changed: make(chan struct{})}
	if err := s.scan(); err != nil {
		return nil, err
	}
	return s, nil
}

// Run re-reads the directory every interval until ctx ends, waking
// long-polls when a bundle appears.
func (s *Service) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.scan(); err != nil {
				s.log.Error("bundle service: reading the bundle directory", zap.Error(err))
			}
		}
	}
}

func (s *Service) scan() error {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("bundle service: %w", err)
	}
	var stamp strings.Builder
	var names []string
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), "bundle-") || !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue
		}
		names = append(names, e.Name())
		fmt.Fprintf(&stamp, "%s/%d/%d;", e.Name(), fi.Size(), fi.ModTime().UnixNano())
	}
	s.mu.Lock()
	same := stamp.String() == s.stamp
	s.mu.Unlock()
	if same {
		return nil
	}
	var list []*Verified
	for _, n := range names {
		raw, err := os.ReadFile(filepath.Join(s.dir, n))
		if err != nil {
			return fmt.Errorf("bundle service: %w", err)
		}
		v, err := Verify(raw, Policy{Trust: s.trust, AnyScope: true, AllowExpired: true})
		if err != nil {
			s.log.Warn("bundle service: skipping a bundle that does not verify", zap.String("file", n), zap.Error(err))
			continue
		}
		list = append(list, v)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Serial < list[j].Serial })
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stamp = stamp.String()
	s.bundles = list
	close(s.changed)
	s.changed = make(chan struct{})
	return nil
}

// pick returns the newest unexpired bundle for t, and the channel closed at
// the next change.
func (s *Service) pick(t Target) (*Verified, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for i := len(s.bundles) - 1; i >= 0; i-- {
		b := s.bundles[i]
		if b.Scope.Matches(t) && now.Before(b.ExpiresAt) {
			return b, s.changed
		}
	}
	return nil, s.changed
}

// ServeHTTP answers GET PathBundle and PUT PathPublish.
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == PathBundle && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		s.serveBundle(w, r)
	case r.URL.Path == PathPublish && r.Method == http.MethodPut:
		s.publish(w, r)
	case r.URL.Path == "/healthz":
		_, _ = io.WriteString(w, "ok\n")
	default:
		http.Error(w, "not found", http.StatusNotFound)
	}
}

func (s *Service) serveBundle(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	t := Target{Fleet: q.Get("fleet"), Namespace: q.Get("namespace")}
	var wait time.Duration
	if v := q.Get("wait"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			http.Error(w, "wait: want a duration such as 30s", http.StatusBadRequest)
			return
		}
		wait = min(d, MaxWait)
	}
	inm := r.Header.Get("If-None-Match")
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		b, changed := s.pick(t)
		switch {
		case b == nil && inm == "":
			http.Error(w, "no bundle for this scope", http.StatusNotFound)
			return
		case b != nil && b.ETag != inm:
			w.Header().Set("ETag", b.ETag)
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Cache-Control", "no-cache")
			_, _ = w.Write(b.Raw)
			return
		}
		// Unchanged (or gone): wait for a change, the deadline or the client.
		select {
		case <-changed:
			continue
		case <-deadline.C:
		case <-r.Context().Done():
			return
		}
		if b == nil {
			http.Error(w, "no bundle for this scope", http.StatusNotFound)
			return
		}
		w.Header().Set("ETag", b.ETag)
		w.WriteHeader(http.StatusNotModified)
		return
	}
}

func (s *Service) publish(w http.ResponseWriter, r *http.Request) {
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBundleBytes))
	if err != nil {
		http.Error(w, "reading the bundle: "+err.Error(), http.StatusRequestEntityTooLarge)
		return
	}
	v, err := Verify(raw, Policy{Trust: s.trust, AnyScope: true, Now: s.now()})
	if err != nil {
		http.Error(w, err.Error(), http.StatusForbidden)
		return
	}
	if err := s.Add(v); err != nil {
		http.Error(w, err.Error(), http.StatusConflict)
		return
	}
	s.log.Info("bundle published", zap.Uint64("serial", v.Serial), zap.String("key_id", v.KeyID), zap.String("scope", v.Scope.String()))
	w.WriteHeader(http.StatusCreated)
	_, _ = fmt.Fprintf(w, "bundle %d stored\n", v.Serial)
}

// Add stores a verified bundle; its serial must be new.
func (s *Service) Add(v *Verified) error {
	s.mu.Lock()
	for _, b := range s.bundles {
		if b.Serial >= v.Serial {
			s.mu.Unlock()
			return fmt.Errorf("%w: serial %d is not above the newest stored, %d", ErrOlder, v.Serial, s.bundles[len(s.bundles)-1].Serial)
		}
	}
	s.mu.Unlock()
	if err := WriteFileAtomic(filepath.Join(s.dir, FileName(v.Serial)), v.Raw, 0o644); err != nil {
		return err
	}
	return s.scan()
}

// WriteFileAtomic writes data to path through a temporary file and a
// rename, so readers see the old or the new content, never a part.
func WriteFileAtomic(path string, data []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, werr := f.Write(data)
	if werr == nil {
		werr = f.Chmod(mode)
	}
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp, path)
	}
	if werr != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", path, werr)
	}
	return nil
}
