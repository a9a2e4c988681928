package identity

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

const keysTestBody = `{"messages":[{"role":"user","content":[{"text":"hi"}]}]}`

type keysFixture struct {
	dir    string
	master []byte
	file   string
	now    time.Time
}

func newKeysFixture(t *testing.T) *keysFixture {
	t.Helper()
	dir := t.TempDir()
	f := &keysFixture{dir: dir, file: filepath.Join(dir, "master.key"), now: time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)}
	if _, err := GenerateMasterKey(f.file, rand.Reader); err != nil {
		t.Fatal(err)
	}
	var err error
	if f.master, err = LoadMasterKey(f.file); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *keysFixture) source(t *testing.T, cfg KeysConfig) *KeysSource {
	t.Helper()
	if cfg.MasterKeyFile == "" {
		cfg.MasterKeyFile = f.file
	}
	s, err := NewKeysSource(cfg, nil)
	if err != nil {
		t.Fatalf("NewKeysSource: %v", err)
	}
	s.now = func() time.Time { return f.now }
	return s
}

func (f *keysFixture) issue(t *testing.T, app string, ttl time.Duration) (string, string) {
	t.Helper()
	akid, secret, err := IssueKey(f.master, app, f.now.Add(ttl), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return akid, secret
}

// signed builds a Converse request to Warden's address signed by the AWS
// SDK's own signer, as a client pointed at Warden would send it.
type signOpts struct {
	host, region, service string
	at                    time.Time
	body                  string
}

func signedConn(t testing.TB, akid, secret string, o signOpts) *Conn {
	t.Helper()
	if o.host == "" {
		o.host = "127.0.0.1:8480"
	}
	if o.region == "" {
		o.region = "us-east-1"
	}
	if o.service == "" {
		o.service = "bedrock"
	}
	if o.body == "" {
		o.body = keysTestBody
	}
	req, err := http.NewRequest(http.MethodPost, "http://"+o.host+"/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/converse", strings.NewReader(o.body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	sum := sha256.Sum256([]byte(o.body))
	if err := v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: akid, SecretAccessKey: secret},
		req, hex.EncodeToString(sum[:]), o.service, o.region, o.at); err != nil {
		t.Fatal(err)
	}
	return &Conn{Request: req, Body: []byte(o.body), Remote: netip.MustParseAddrPort("127.0.0.1:50000")}
}

func TestKeysSourceVerifies(t *testing.T) {
	f := newKeysFixture(t)
	s := f.source(t, KeysConfig{})
	akid, secret := f.issue(t, "payments", 30*24*time.Hour)
	c := signedConn(t, akid, secret, signOpts{at: f.now.Add(-time.Minute)})
	if !s.Presents(c) {
		t.Fatal("a Warden key must be presented")
	}
	id, err := s.Resolve(context.Background(), c)
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	want := map[string]Tag{
		TagWardenKeyApp: {Value: "payments", Strong: true, Source: "keys"},
		TagWardenKeyID:  {Value: akid, Strong: true, Source: "keys"},
	}
	if id.Source != "keys" || len(id.Tags) != 2 || id.Tags[TagWardenKeyApp] != want[TagWardenKeyApp] || id.Tags[TagWardenKeyID] != want[TagWardenKeyID] {
		t.Fatalf("identity %+v", id)
	}
}

func TestKeysSourceFailures(t *testing.T) {
	f := newKeysFixture(t)
	akid, secret := f.issue(t, "payments", time.Hour)
	expired, expiredSecret := f.issue(t, "payments", -time.Second)
	revoked, revokedSecret := f.issue(t, "payments", time.Hour)
	fileRevoked, fileRevokedSecret := f.issue(t, "payments", time.Hour)
	otherMaster := bytes.Repeat([]byte("o"), 32)
	foreign, foreignSecret, _ := IssueKey(otherMaster, "payments", f.now.Add(time.Hour), rand.Reader)
	// Tampered: the id is edited to name another app and signed with the
	// original secret.
	tampered, _, _ := IssueKey(f.master, "admin", f.now.Add(time.Hour), rand.Reader)
	v2 := "WDN2" + akid[4:]

	revFile := filepath.Join(f.dir, "revoked.txt")
	writeKeyFile(t, revFile, []byte("# revoked after the incident\n"+fileRevoked+"  # laptop lost\n\n"), 0o644)
	s := f.source(t, KeysConfig{Revoked: []string{revoked}, RevocationFile: revFile, Region: "us-east-1",
		Hosts: []string{"127.0.0.1:8480", "warden.internal:8443"}})

	at := f.now
	cases := []struct {
		name string
		conn *Conn
		is   error
		msg  string
	}{
		{"expired", signedConn(t, expired, expiredSecret, signOpts{at: at}), ErrKeyExpired, "expired at"},
		{"revoked in config", signedConn(t, revoked, revokedSecret, signOpts{at: at}), ErrKeyRevoked, "revoked"},
		{"revoked in file", signedConn(t, fileRevoked, fileRevokedSecret, signOpts{at: at}), ErrKeyRevoked, "revoked"},
		{"wrong secret", signedConn(t, akid, strings.Repeat("0", 64), signOpts{at: at}), ErrKeySignature, "signature does not match"},
		{"another master", signedConn(t, foreign, foreignSecret, signOpts{at: at}), ErrKeySignature, "another master key"},
		{"tampered id", signedConn(t, tampered, secret, signOpts{at: at}), ErrKeySignature, "signature does not match"},
		{"unknown version", signedConn(t, v2, SecretFor(f.master, v2), signOpts{at: at}), ErrKeyVersion, "unknown Warden key version"},
		{"skewed date", signedConn(t, akid, secret, signOpts{at: at.Add(-6 * time.Minute)}), nil, "clock skew"},
		{"future date", signedConn(t, akid, secret, signOpts{at: at.Add(6 * time.Minute)}), nil, "clock skew"},
		{"other service", signedConn(t, akid, secret, signOpts{at: at, service: "s3"}), nil, "credential scope"},
		{"other region", signedConn(t, akid, secret, signOpts{at: at, region: "eu-west-1"}), nil, "credential scope"},
		{"replayed to another host", func() *Conn {
			c := signedConn(t, akid, secret, signOpts{at: at, host: "warden-a.internal:8443"})
			return c
		}(), nil, "not one of identity.keys.hosts"},
		{"altered body", func() *Conn {
			c := signedConn(t, akid, secret, signOpts{at: at})
			c.Body = []byte(strings.Replace(keysTestBody, "hi", "ho", 1))
			return c
		}(), ErrKeySignature, "signature does not match"},
		{"host changed after signing", func() *Conn {
			c := signedConn(t, akid, secret, signOpts{at: at})
			c.Request.Host = "warden.internal:8443"
			return c
		}(), ErrKeySignature, "signature does not match"},
		{"body hash header lies", func() *Conn {
			c := signedConn(t, akid, secret, signOpts{at: at})
			c.Request.Header.Set("X-Amz-Content-Sha256", strings.Repeat("a", 64))
			return c
		}(), nil, "body does not match"},
		{"unsigned payload", func() *Conn {
			c := signedConn(t, akid, secret, signOpts{at: at})
			c.Request.Header.Set("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD")
			return c
		}(), nil, "unsigned payload"},
		{"two authorization headers", func() *Conn {
			c := signedConn(t, akid, secret, signOpts{at: at})
			c.Request.Header.Add("Authorization", c.Request.Header.Get("Authorization"))
			return c
		}(), nil, "malformed signature"},
		{"date not signed", func() *Conn {
			c := signedConn(t, akid, secret, signOpts{at: at})
			a := c.Request.Header.Get("Authorization")
			c.Request.Header.Set("Authorization", strings.Replace(a, ";x-amz-date", "", 1))
			return c
		}(), nil, "malformed signature"},
		{"presigned url", func() *Conn {
			c := signedConn(t, akid, secret, signOpts{at: at})
			c.Request.Header.Del("Authorization")
			c.Request.URL.RawQuery = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=" + akid + "%2F20260601%2Fus-east-1%2Fbedrock%2Faws4_request"
			return c
		}(), nil, "presigned"},
	}
	secrets := []string{secret, expiredSecret, revokedSecret, fileRevokedSecret, foreignSecret, hex.EncodeToString(f.master), string(f.master)}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if !s.Presents(tc.conn) {
				t.Fatal("Presents = false")
			}
			_, err := s.Resolve(context.Background(), tc.conn)
			if err == nil {
				t.Fatal("verified")
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("err = %v, want %v", err, tc.is)
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.msg) || !strings.Contains(msg, "failed verification") {
				t.Errorf("err = %q, want it to contain %q", msg, tc.msg)
			}
			for _, sec := range secrets {
				if strings.Contains(msg, sec) {
					t.Errorf("the error reveals a secret: %q", msg)
				}
			}
			if strings.Contains(msg, "canonical request") {
				t.Errorf("the error carries the verifier's diagnostic detail: %q", msg)
			}
		})
	}
	// The same key, signed properly, is fine.
	if _, err := s.Resolve(context.Background(), signedConn(t, akid, secret, signOpts{at: at, host: "WARDEN.internal:8443"})); err != nil {
		t.Errorf("a listed host: %v", err)
	}
}

func TestKeysSourcePresents(t *testing.T) {
	f := newKeysFixture(t)
	s := f.source(t, KeysConfig{})
	akid, secret := f.issue(t, "payments", time.Hour)
	if !s.Presents(signedConn(t, akid, secret, signOpts{at: f.now})) {
		t.Error("Warden key not presented")
	}
	if s.Presents(signedConn(t, "AKIAIOSFODNN7EXAMPLE", "secret", signOpts{at: f.now})) {
		t.Error("an AWS key is not a Warden key")
	}
	c := signedConn(t, akid, secret, signOpts{at: f.now})
	c.Request.Header.Del("Authorization")
	if s.Presents(c) || s.Presents(nil) || s.Presents(&Conn{}) {
		t.Error("no credential presents nothing")
	}
	c.Request.Header.Set("Authorization", "Bearer ABSKxyz")
	if s.Presents(c) {
		t.Error("a bearer token is not a Warden key")
	}
}

func TestKeysSourceRevocationFileReload(t *testing.T) {
	f := newKeysFixture(t)
	akid, secret := f.issue(t, "payments", time.Hour)
	other, otherSecret := f.issue(t, "payments", time.Hour)
	revFile := filepath.Join(f.dir, "revoked.txt")
	writeKeyFile(t, revFile, nil, 0o644)
	s := f.source(t, KeysConfig{RevocationFile: revFile})
	resolve := func(id, sec string) error {
		_, err := s.Resolve(context.Background(), signedConn(t, id, sec, signOpts{at: f.now}))
		return err
	}
	if err := resolve(akid, secret); err != nil {
		t.Fatal(err)
	}
	// Revoke through a ConfigMap-style swap (a new file renamed over the old).
	tmp := revFile + ".new"
	writeKeyFile(t, tmp, []byte(akid+"\n"), 0o644)
	if err := os.Rename(tmp, revFile); err != nil {
		t.Fatal(err)
	}
	f.now = f.now.Add(revocationCheckInterval)
	if err := resolve(akid, secret); !errors.Is(err, ErrKeyRevoked) {
		t.Fatalf("after revocation: %v", err)
	}
	if err := resolve(other, otherSecret); err != nil {
		t.Fatalf("another key: %v", err)
	}
	// An unparsable list denies every key (a typo must not leave a key valid).
	writeKeyFile(t, revFile, []byte(akid+"\nAKIA-typo\n"), 0o644)
	f.now = f.now.Add(revocationCheckInterval)
	if err := resolve(other, otherSecret); err == nil || !strings.Contains(err.Error(), "revocation list cannot be read or parsed") {
		t.Fatalf("bad list: %v", err)
	}
	if r := s.currentRevocations(); r.err == nil || !strings.Contains(r.err.Error(), "line 2") {
		t.Fatalf("the logged reason should name the line: %v", r.err)
	}
	// So does a missing one.
	os.Remove(revFile)
	f.now = f.now.Add(revocationCheckInterval)
	if err := resolve(other, otherSecret); err == nil || !strings.Contains(err.Error(), "revocation list cannot be read") || !errors.Is(s.currentRevocations().err, os.ErrNotExist) {
		t.Fatalf("missing list: %v", err)
	}
	// Restored, un-revoked.
	writeKeyFile(t, revFile, []byte("# nothing revoked\n"), 0o644)
	f.now = f.now.Add(revocationCheckInterval)
	if err := resolve(akid, secret); err != nil {
		t.Fatalf("restored list: %v", err)
	}
}

func TestKeysConfigValidate(t *testing.T) {
	good, _, _ := IssueKey(testMaster, "a", time.Now().Add(time.Hour), rand.Reader)
	for name, tc := range map[string]struct {
		cfg  KeysConfig
		want string
	}{
		"ok":          {KeysConfig{MasterKeyFile: "/k", Revoked: []string{good}, MaxSkew: time.Minute}, ""},
		"no master":   {KeysConfig{}, "master_key_file is required"},
		"bad revoked": {KeysConfig{MasterKeyFile: "/k", Revoked: []string{"AKIAIOSFODNN7EXAMPLE"}}, "revoked[0]"},
		"long skew":   {KeysConfig{MasterKeyFile: "/k", MaxSkew: time.Hour}, "max_skew"},
		"neg skew":    {KeysConfig{MasterKeyFile: "/k", MaxSkew: -time.Second}, "max_skew"},
		"bad host":    {KeysConfig{MasterKeyFile: "/k", Hosts: []string{"http://x/"}}, "hosts[0]"},
	} {
		t.Run(name, func(t *testing.T) {
			err := tc.cfg.validate()
			if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("validate: %v, want %q", err, tc.want)
			}
		})
	}
	// A refused master key file fails construction.
	f := newKeysFixture(t)
	if err := os.Chmod(f.file, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := NewKeysSource(KeysConfig{MasterKeyFile: f.file}, nil); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("0644 master: %v", err)
	}
}

// The config file form, and the no-fallback rule through the Resolver: a
// Warden key that fails verification denies even where the static source
// would have answered; an ordinary AWS key gets the static identity.
func TestKeysSourceInResolver(t *testing.T) {
	f := newKeysFixture(t)
	revoked, revokedSecret, _ := IssueKey(f.master, "payments", time.Now().Add(time.Hour), rand.Reader)
	cfg, err := parseIdentity([]byte(`
version: 1
identity:
  sources: [static, keys]
  static: {app: chatbot}
  keys:
    master_key_file: ` + f.file + `
    revoked: [` + revoked + `]
    max_skew: 2m
apps:
  - name: chatbot
    match: {tags: {app: chatbot}}
    allow_weak_identity: true
`))
	if err != nil && strings.Contains(err.Error(), "allow_weak_identity") {
		// Older policy model without the field.
		cfg, err = parseIdentity([]byte(`
version: 1
identity:
  sources: [static, keys]
  static: {app: chatbot}
  keys: {master_key_file: ` + f.file + `, revoked: [` + revoked + `], max_skew: 2m}
apps:
  - {name: chatbot, match: {tags: {app: chatbot}}}
`))
	}
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	if cfg.Identity.Keys.MaxSkew != 2*time.Minute || len(cfg.Identity.Keys.Revoked) != 1 {
		t.Fatalf("keys config %+v", cfg.Identity.Keys)
	}
	r, err := NewResolver(context.Background(), cfg.Identity, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	akid, secret, _ := IssueKey(f.master, "payments", now.Add(time.Hour), rand.Reader)
	id, err := r.Resolve(context.Background(), signedConn(t, akid, secret, signOpts{at: now}))
	if err != nil || id.Source != "keys" || id.Tags[TagWardenKeyApp].Value != "payments" {
		t.Fatalf("valid key: %+v, %v", id, err)
	}
	for name, c := range map[string]*Conn{
		"revoked":      signedConn(t, revoked, revokedSecret, signOpts{at: now}),
		"wrong secret": signedConn(t, akid, "nope", signOpts{at: now}),
	} {
		id, err := r.Resolve(context.Background(), c)
		if err == nil || !strings.Contains(err.Error(), "keys: Warden-issued key") || id.Source != "" {
			t.Errorf("%s: %+v, %v (must deny, never fall back to static)", name, id, err)
		}
	}
	id, err = r.Resolve(context.Background(), signedConn(t, "AKIAIOSFODNN7EXAMPLE", "x", signOpts{at: now}))
	if err != nil || id.Source != "static" {
		t.Errorf("ordinary AWS key: %+v, %v", id, err)
	}
}

func BenchmarkKeysResolve(b *testing.B) {
	dir := b.TempDir()
	file := filepath.Join(dir, "master.key")
	if _, err := GenerateMasterKey(file, rand.Reader); err != nil {
		b.Fatal(err)
	}
	master, _ := LoadMasterKey(file)
	s, err := NewKeysSource(KeysConfig{MasterKeyFile: file}, nil)
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	akid, secret, _ := IssueKey(master, "payments", now.Add(time.Hour), rand.Reader)
	c := signedConn(b, akid, secret, signOpts{at: now})
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if !s.Presents(c) {
			b.Fatal("not presented")
		}
		if _, err := s.Resolve(context.Background(), c); err != nil {
			b.Fatal(err)
		}
	}
}
