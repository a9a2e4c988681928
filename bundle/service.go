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
// Store (a directory or an S3 prefix), with ETag and long-poll, and accepts
// published bundles (PUT, verified against its trusted keys: the signature
// is the authorisation). A Follower reading a Store directly runs one too,
// unserved, to pick its bundle the same way.
type Service struct {
	store Store
	trust Trust
	log   *zap.Logger
	now   func() time.Time
	// onSkip hears of each stored bundle that does not verify (once per
	// version of the file).
	onSkip func(name string, err error)

	mu      sync.Mutex
	bundles []*Verified // by serial, ascending
	files   map[string]storedFile
	changed chan struct{} // closed and replaced when bundles change
	stamp   string
}

// storedFile is what a scan made of one file, kept while its stamp holds.
type storedFile struct {
	stamp string
	v     *Verified // nil: it did not verify
}

// NewService serves the bundles in store, checked against trust. It reads
// the store once; Run keeps re-reading it.
func NewService(ctx context.Context, store Store, trust Trust, log *zap.Logger) (*Service, error) {
	if len(trust) == 0 {
		return nil, errors.New("bundle service: no trusted keys")
	}
	if log == nil {
		log = zap.NewNop()
	}
	s := &Service{store: store, trust: trust, log: log, now: time.Now, changed: make(chan struct{}), files: map[string]storedFile{}}
	if err := s.scan(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// Run re-reads the store every interval until ctx ends, waking long-polls
// when a bundle appears.
func (s *Service) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.scan(ctx); err != nil {
				s.log.Error("bundle service: reading the bundle store", zap.Error(err))
			}
		}
	}
}

// scan lists the store and reads the files that are new or changed since
// the last scan (an S3 prefix costs one LIST when nothing changed).
func (s *Service) scan(ctx context.Context) error {
	list, err := s.store.List(ctx)
	if err != nil {
		return fmt.Errorf("bundle service: %w", err)
	}
	var stamp strings.Builder
	for _, o := range list {
		fmt.Fprintf(&stamp, "%s/%s;", o.Name, o.Stamp)
	}
	s.mu.Lock()
	same := stamp.String() == s.stamp
	old := s.files
	s.mu.Unlock()
	if same {
		return nil
	}
	files := make(map[string]storedFile, len(list))
	var bundles []*Verified
	for _, o := range list {
		f, ok := old[o.Name]
		if !ok || f.stamp != o.Stamp {
			raw, err := s.store.Get(ctx, o.Name)
			if err != nil {
				return fmt.Errorf("bundle service: %w", err)
			}
			f = storedFile{stamp: o.Stamp}
			f.v, err = Verify(raw, Policy{Trust: s.trust, AnyScope: true, AllowExpired: true})
			if err == nil && FileName(f.v.Serial) != o.Name {
				f.v, err = nil, fmt.Errorf("%w: %s holds serial %d", ErrMalformed, o.Name, f.v.Serial)
			}
			if err != nil {
				s.log.Warn("bundle service: skipping a bundle that does not verify", zap.String("store", s.store.String()),
					zap.String("file", o.Name), zap.Error(err))
				if s.onSkip != nil {
					s.onSkip(o.Name, err)
				}
			}
		}
		files[o.Name] = f
		if f.v != nil {
			bundles = append(bundles, f.v)
		}
	}
	sort.Slice(bundles, func(i, j int) bool { return bundles[i].Serial < bundles[j].Serial })
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stamp = stamp.String()
	s.files = files
	s.bundles = bundles
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
	if err := s.Add(r.Context(), v); err != nil {
		code := http.StatusConflict
		if !errors.Is(err, ErrOlder) && !errors.Is(err, ErrExists) {
			code = http.StatusInternalServerError
		}
		http.Error(w, err.Error(), code)
		return
	}
	s.log.Info("bundle published", zap.Uint64("serial", v.Serial), zap.String("key_id", v.KeyID), zap.String("scope", v.Scope.String()))
	w.WriteHeader(http.StatusCreated)
	_, _ = fmt.Fprintf(w, "bundle %d stored\n", v.Serial)
}

// Add stores a verified bundle; its serial must be above every stored one.
func (s *Service) Add(ctx context.Context, v *Verified) error {
	s.mu.Lock()
	if n := len(s.bundles); n > 0 && s.bundles[n-1].Serial >= v.Serial {
		newest := s.bundles[n-1].Serial
		s.mu.Unlock()
		return fmt.Errorf("%w: serial %d is not above the newest stored, %d", ErrOlder, v.Serial, newest)
	}
	s.mu.Unlock()
	if err := s.store.Create(ctx, FileName(v.Serial), v.Raw); err != nil {
		return err
	}
	return s.scan(ctx)
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
