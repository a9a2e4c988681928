package bundle

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// FuzzVerify feeds arbitrary bytes to the parser and verifier: no panic,
// and nothing but a bundle signed by the trusted key is ever accepted.
func FuzzVerify(f *testing.F) {
	s, pub := testKey(7, "k")
	trust := Trust{"k": pub}
	good, err := Sign(Envelope{Serial: 3, IssuedAt: t0, ExpiresAt: t0.Add(time.Hour), Scope: Scope{Fleets: []string{"*"}}, Policy: testPolicy}, s)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	seeds, _ := filepath.Glob(filepath.Join("testdata", "seed", "*"))
	for _, p := range seeds {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(`{"envelope":"e30=","signatures":[{"key_id":"k","sig":"AAAA"}]}`))
	f.Add([]byte(`{"envelope":"!!","signatures":null}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(strings.Replace(string(good), `"envelope"`, `"Envelope"`, 1)))          // refused: a key in another case
	f.Add([]byte(strings.Replace(string(good), `"key_id"`, `"key_id":"x","key_id"`, 1))) // refused: a key twice
	other, _ := testKey(9, "k2")
	two, err := Sign(Envelope{Serial: 4, IssuedAt: t0, ExpiresAt: t0.Add(time.Hour), Scope: Scope{Namespaces: []string{"canary-*"}, Fleets: []string{"f"}}, Policy: testPolicy}, other, s)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(two)
	f.Fuzz(func(t *testing.T, raw []byte) {
		_, _, _, _ = Parse(raw)
		v, err := Verify(raw, Policy{Trust: trust, Target: Target{Fleet: "f", Namespace: "n"}, Now: t0.Add(time.Minute)})
		if err != nil {
			if v != nil {
				t.Fatal("a refused bundle was returned")
			}
			return
		}
		// Accepted: it must really be signed by k over its envelope.
		if v.KeyID != "k" || v.Serial == 0 || v.Policy == "" {
			t.Fatalf("accepted %+v", v)
		}
	})
}

// FuzzStoreNames: the names and URLs a store parses never panic, and
// what they accept is what they say.
func FuzzStoreNames(f *testing.F) {
	for _, s := range []string{FileName(1), FileName(^uint64(0)), "bundle-1.json", "s3://b/p/", "s3://b", "s3:///x", "s3://b?x/y",
		"http://127.0.0.1:9000", "http://[::1]/", "https://s3.example", "http://minio:9000", "canary-*", "[", "\\"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if isBundleName(s) && (len(s) != len(FileName(0)) || strings.ContainsAny(s, "/\\")) {
			t.Fatalf("isBundleName accepted %q", s)
		}
		if b, p, err := ParseS3URL(s); err == nil && (b == "" || strings.Contains(b, "/") || (p != "" && !strings.HasSuffix(p, "/"))) {
			t.Fatalf("ParseS3URL(%q) = %q %q", s, b, p)
		}
		_ = CheckS3Endpoint(s)
		sc := Scope{Fleets: []string{s}}
		if sc.Validate() == nil && !sc.Matches(Target{Fleet: s}) && !strings.ContainsAny(s, "*?[\\") {
			t.Fatalf("scope %q does not match itself", s)
		}
	})
}
