package identity

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/warden-egress/warden/bedrock/sigv4"
)

// KeysConfig configures the keys identity source: Warden-issued SigV4 keys
// (see keys.go), verified by Warden itself.
type KeysConfig struct {
	// MasterKeyFile is the master key (mode 0600), or a directory holding
	// it alone (a Kubernetes Secret volume with defaultMode: 0400).
	MasterKeyFile string `yaml:"master_key_file"`
	// Revoked lists revoked access key ids.
	Revoked []string `yaml:"revoked"`
	// RevocationFile holds more revoked ids, one per line ('#' starts a
	// comment). It is re-read when it changes; while it cannot be read or
	// parsed every Warden-issued key is denied.
	RevocationFile string `yaml:"revocation_file"`
	// MaxSkew is how far the signed request time may be from Warden's clock
	// (default 5m, at most 15m).
	MaxSkew time.Duration `yaml:"max_skew"`
	// Region, when set, is the only region accepted in the credential scope.
	Region string `yaml:"region"`
	// Hosts, when set, are the only host (or :authority) values accepted in
	// the signature, e.g. ["warden.internal:8443"], so a request signed for
	// one Warden cannot be replayed to another sharing the master key.
	Hosts []string `yaml:"hosts"`
}

// DefaultKeysMaxSkew is the default keys.max_skew, AWS's own tolerance.
const DefaultKeysMaxSkew = sigv4.DefaultMaxSkew

const maxKeysMaxSkew = 15 * time.Minute

// revocationCheckInterval is how often the revocation file is re-read.
const revocationCheckInterval = time.Second

func (c KeysConfig) validate() error {
	var errs []error
	if c.MasterKeyFile == "" {
		errs = append(errs, errors.New("identity.keys.master_key_file is required"))
	}
	if c.MaxSkew < 0 || c.MaxSkew > maxKeysMaxSkew {
		errs = append(errs, fmt.Errorf("identity.keys.max_skew: %s is outside 0..%s", c.MaxSkew, maxKeysMaxSkew))
	}
	for i, id := range c.Revoked {
		if _, _, err := ParseKeyID(id); err != nil {
			errs = append(errs, fmt.Errorf("identity.keys.revoked[%d]: %q: %v", i, id, err))
		}
	}
	for i, h := range c.Hosts {
		if h == "" || strings.ContainsAny(h, " /\t") {
			errs = append(errs, fmt.Errorf("identity.keys.hosts[%d]: %q is not a host[:port]", i, h))
		}
	}
	return errors.Join(errs...)
}

// KeysSource verifies Warden-issued SigV4 keys. It is a Presenter: a request
// signed with a Warden key is decided by this source alone.
type KeysSource struct {
	master  []byte
	opts    sigv4.Options
	hosts   map[string]bool
	revoked map[string]bool // from the config; immutable
	file    string
	log     *zap.Logger
	now     func() time.Time

	rev       atomic.Pointer[revocations] // from the file
	reloadMu  sync.Mutex
	nextCheck atomic.Int64 // unix nanos
}

// revocations is one reading of the revocation file.
type revocations struct {
	data []byte
	ids  map[string]bool
	err  error // the file could not be read or parsed: deny every key
}

func newKeysSource(_ context.Context, cfg KeysConfig, deps Deps) (Source, error) {
	return NewKeysSource(cfg, deps.Logger)
}

// NewKeysSource loads the master key and revocation list.
func NewKeysSource(cfg KeysConfig, log *zap.Logger) (*KeysSource, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = zap.NewNop()
	}
	master, err := LoadMasterKey(cfg.MasterKeyFile)
	if err != nil {
		return nil, err
	}
	s := &KeysSource{
		master:  master,
		opts:    sigv4.Options{Service: "bedrock", Region: cfg.Region, MaxSkew: cfg.MaxSkew},
		revoked: map[string]bool{},
		file:    cfg.RevocationFile,
		log:     log,
		now:     time.Now,
	}
	if s.opts.MaxSkew == 0 {
		s.opts.MaxSkew = DefaultKeysMaxSkew
	}
	for _, id := range cfg.Revoked {
		s.revoked[id] = true
	}
	if len(cfg.Hosts) > 0 {
		s.hosts = map[string]bool{}
		for _, h := range cfg.Hosts {
			s.hosts[strings.ToLower(h)] = true
		}
	}
	if s.file != "" {
		r := readRevocations(s.file, nil)
		if r.err != nil {
			return nil, r.err
		}
		s.rev.Store(r)
	}
	log.Info("keys identity source ready", zap.String("master_key_fingerprint", MasterKeyFingerprint(master)),
		zap.Int("revoked", len(s.revoked)+len(s.currentRevocations().ids)))
	return s, nil
}

// Name implements Source.
func (s *KeysSource) Name() string { return SourceKeys }

// Presents implements Presenter: the request carries a SigV4 credential
// (header or query form) whose access key id has Warden's prefix.
func (s *KeysSource) Presents(c *Conn) bool {
	if c == nil || c.Request == nil {
		return false
	}
	for _, v := range c.Request.Header.Values("Authorization") {
		if i := strings.Index(v, "Credential="); i >= 0 && strings.HasPrefix(v[i+len("Credential="):], KeyPrefix) {
			return true
		}
	}
	if u := c.Request.URL; u != nil && strings.Contains(u.RawQuery, "Credential="+KeyPrefix) {
		return true // presigned form, which Warden does not accept: Resolve denies it
	}
	for _, k := range PresentedAPIKeys(c.Request) {
		if IsWardenKeyID(k) {
			return true // a bearer key
		}
	}
	return false
}

// Resolve implements Source. Every failure names the reason and the key id
// (never a secret); the Resolver turns it into a denial.
func (s *KeysSource) Resolve(_ context.Context, c *Conn) (Identity, error) {
	if c == nil || c.Request == nil {
		return Identity{}, ErrNoIdentity
	}
	r := c.Request
	if keys := PresentedAPIKeys(r); len(keys) > 0 {
		return s.resolveBearer(r, keys)
	}
	shown := presentedKeyID(r)
	fail := func(err error) (Identity, error) {
		return Identity{}, fmt.Errorf("Warden-issued key %s failed verification: %w", shown, err)
	}
	if len(r.Header.Values("Authorization")) == 0 {
		return fail(errors.New("only the Authorization header form of SigV4 is accepted (not a presigned URL)"))
	}

	now := s.now()
	opts := s.opts
	opts.Now = now
	var parseErr error
	var app string
	var expires time.Time
	res, err := sigv4.Verify(r, c.Body, func(id string) (string, bool) {
		app, expires, parseErr = ParseKeyID(id)
		if parseErr != nil {
			return "", false
		}
		return SecretFor(s.master, id), true
	}, opts)
	if err != nil {
		if parseErr != nil {
			return fail(parseErr)
		}
		return fail(s.describe(err))
	}
	akid := res.AccessKeyID
	if s.hosts != nil {
		if h := strings.ToLower(r.Host); !s.hosts[h] {
			return fail(fmt.Errorf("the request was signed for host %q, which is not one of identity.keys.hosts", truncateString(r.Host, 128)))
		}
	}
	if err := s.admit(akid, expires, now); err != nil {
		return fail(err)
	}
	return keyIdentity(app, akid), nil
}

// admit checks what a genuine key must still pass: its expiry and the
// revocation lists.
func (s *KeysSource) admit(akid string, expires, now time.Time) error {
	if !now.Before(expires) {
		return fmt.Errorf("%w at %s", ErrKeyExpired, expires.Format(time.RFC3339))
	}
	if s.revoked[akid] {
		return ErrKeyRevoked
	}
	if s.file != "" {
		rev := s.revocationsAt(now)
		if rev.err != nil {
			// The reason (a file name, a line) is in Warden's log, not for the caller.
			return errors.New("the revocation list cannot be read or parsed, so no Warden-issued key is accepted until an operator fixes it")
		}
		if rev.ids[akid] {
			return ErrKeyRevoked
		}
	}
	return nil
}

func keyIdentity(app, akid string) Identity {
	return Identity{Source: SourceKeys, Tags: map[string]Tag{
		TagWardenKeyApp: StrongTag(SourceKeys, app),
		TagWardenKeyID:  StrongTag(SourceKeys, akid),
	}}
}

// resolveBearer verifies a Warden-issued bearer key (bearer.go). Exactly
// one credential may be presented: a bearer key beside a signature or a
// second key is refused, since the upstream and Warden might each pick a
// different one. identity.keys.hosts and .region do not apply: a bearer
// key signs no host or scope.
func (s *KeysSource) resolveBearer(r *http.Request, keys []string) (Identity, error) {
	akid, mac, ok := splitBearerKey(keys[0])
	shown := "(malformed bearer key)"
	if ok {
		shown = akid
	}
	fail := func(err error) (Identity, error) {
		return Identity{}, fmt.Errorf("Warden-issued bearer key %s failed verification: %w", shown, err)
	}
	sigv4 := false
	for _, v := range r.Header.Values("Authorization") {
		if scheme, _, _ := strings.Cut(v, " "); !strings.EqualFold(scheme, "Bearer") {
			sigv4 = true
		}
	}
	switch {
	case len(keys) > 1 || sigv4:
		return fail(errors.New("more than one credential presented (send one Authorization: Bearer or one x-api-key, and no signature)"))
	case !ok:
		return fail(fmt.Errorf("%w: want KEYID.MAC as warden keys issue --format bearer prints it", ErrKeyMalformed))
	}
	app, expires, err := ParseKeyID(akid)
	if err != nil {
		return fail(err)
	}
	if !checkBearerMAC(s.master, akid, mac) {
		return fail(fmt.Errorf("%w (a key from another master key, or an edited key)", ErrKeySignature))
	}
	if err := s.admit(akid, expires, s.now()); err != nil {
		return fail(err)
	}
	return keyIdentity(app, akid), nil
}

// describe turns a sigv4 error into a reason for the caller. The verifier's
// Detail (the expected canonical request) goes to the debug log only.
func (s *KeysSource) describe(err error) error {
	var se *sigv4.Error
	if !errors.As(err, &se) {
		return err
	}
	if se.Detail != "" {
		s.log.Debug("keys: signature verification failed", zap.String("detail", se.Detail))
	}
	switch {
	case errors.Is(se, sigv4.ErrSignatureMismatch):
		return fmt.Errorf("%w (wrong secret, a key from another master key, or a request altered after signing)", ErrKeySignature)
	case errors.Is(se, sigv4.ErrExpired):
		return fmt.Errorf("request time outside the allowed clock skew: %s", se.Message)
	case errors.Is(se, sigv4.ErrScope):
		return fmt.Errorf("credential scope: %s", se.Message)
	case errors.Is(se, sigv4.ErrBodyHash):
		return errors.New("the body does not match its signed hash")
	case errors.Is(se, sigv4.ErrUnsignedPayload):
		return fmt.Errorf("unsigned payload: %s", se.Message)
	default:
		return fmt.Errorf("malformed signature: %s", se.Message)
	}
}

// presentedKeyID extracts the access key id for messages, before anything
// is verified; bounded so a hostile header cannot flood the logs.
func presentedKeyID(r *http.Request) string {
	v := r.Header.Get("Authorization")
	if v == "" && r.URL != nil {
		v = r.URL.RawQuery
	}
	i := strings.Index(v, "Credential=")
	if i < 0 {
		return "(none)"
	}
	v = v[i+len("Credential="):]
	if j := strings.IndexAny(v, "/%,& "); j >= 0 {
		v = v[:j]
	}
	v = truncateString(v, 130)
	for i := 0; i < len(v); i++ {
		if c := v[i]; !('A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.') {
			return fmt.Sprintf("%q", v) // quoted: whatever the caller sent
		}
	}
	return v
}

func truncateString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

func (s *KeysSource) currentRevocations() *revocations {
	if r := s.rev.Load(); r != nil {
		return r
	}
	return &revocations{}
}

// revocationsAt returns the revocation file's ids, re-reading the file at
// most once per revocationCheckInterval. One caller reloads; the others use
// the last reading meanwhile.
func (s *KeysSource) revocationsAt(now time.Time) *revocations {
	cur := s.currentRevocations()
	if now.UnixNano() < s.nextCheck.Load() || !s.reloadMu.TryLock() {
		return cur
	}
	defer s.reloadMu.Unlock()
	s.nextCheck.Store(now.Add(revocationCheckInterval).UnixNano())
	next := readRevocations(s.file, s.rev.Load())
	if next.err != nil && cur.err != nil && next.err.Error() == cur.err.Error() {
		return cur // still broken the same way: logged already
	}
	if next != cur {
		s.rev.Store(next)
		if next.err != nil {
			s.log.Error("keys: revocation file unreadable; denying every Warden-issued key until it is fixed", zap.Error(next.err))
		} else {
			s.log.Info("keys: revocation file reloaded", zap.String("file", s.file), zap.Int("revoked", len(next.ids)))
		}
	}
	return next
}

// readRevocations reads the revocation file; it returns prev itself when
// the contents are unchanged.
func readRevocations(path string, prev *revocations) *revocations {
	data, err := os.ReadFile(path)
	if err != nil {
		return &revocations{err: fmt.Errorf("revocation file: %w", err)}
	}
	if prev != nil && prev.err == nil && bytes.Equal(prev.data, data) {
		return prev
	}
	ids, err := ParseRevocations(data)
	if err != nil {
		return &revocations{data: data, err: fmt.Errorf("revocation file %s: %w", path, err)}
	}
	return &revocations{data: data, ids: ids}
}

// ParseRevocations parses a revocation list: one access key id per line,
// blank lines and '#' comments ignored. A line that is not a Warden key id
// is an error (a typo would otherwise leave a key silently valid).
func ParseRevocations(data []byte) (map[string]bool, error) {
	ids := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if _, _, err := ParseKeyID(line); err != nil {
			return nil, fmt.Errorf("line %d: %q: %v", n, truncateString(line, 130), err)
		}
		ids[line] = true
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return ids, nil
}
