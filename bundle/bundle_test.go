package bundle

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testKey derives a fixed key from a seed byte, so tests are repeatable.
func testKey(seed byte, id string) (Signer, ed25519.PublicKey) {
	s := make([]byte, ed25519.SeedSize)
	for i := range s {
		s[i] = seed
	}
	k := ed25519.NewKeyFromSeed(s)
	return Signer{KeyID: id, Key: k}, k.Public().(ed25519.PublicKey)
}

var t0 = time.Date(2026, 12, 5, 8, 0, 0, 0, time.UTC)

const testPolicy = "apps:\n  - name: shop\n    match: {tags: {k8s.namespace: shop}}\n    allow: {models: [anthropic.*]}\n"

func sign(t *testing.T, env Envelope, signers ...Signer) []byte {
	t.Helper()
	if env.Policy == "" {
		env.Policy = testPolicy
	}
	if env.IssuedAt.IsZero() {
		env.IssuedAt = t0
	}
	if env.ExpiresAt.IsZero() {
		env.ExpiresAt = t0.Add(time.Hour)
	}
	if len(env.Scope.Fleets)+len(env.Scope.Namespaces) == 0 {
		env.Scope.Fleets = []string{"*"}
	}
	raw, err := Sign(env, signers...)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// tamper rewrites the envelope's policy without re-signing.
func tamper(t *testing.T, raw []byte, edit func(*Envelope)) []byte {
	t.Helper()
	var b Bundle
	if err := json.Unmarshal(raw, &b); err != nil {
		t.Fatal(err)
	}
	envRaw, _ := base64.StdEncoding.DecodeString(b.Envelope)
	var env Envelope
	if err := json.Unmarshal(envRaw, &env); err != nil {
		t.Fatal(err)
	}
	edit(&env)
	envRaw, _ = json.Marshal(env)
	b.Envelope = base64.StdEncoding.EncodeToString(envRaw)
	out, _ := json.Marshal(b)
	return out
}

func TestVerify(t *testing.T) {
	old, oldPub := testKey(1, "sec-2026-11")
	cur, curPub := testKey(2, "sec-2026-12")
	rogue, _ := testKey(3, "sec-2026-12") // a key under a trusted id
	stranger, _ := testKey(4, "someone-else")
	trust := Trust{"sec-2026-11": oldPub, "sec-2026-12": curPub}
	target := Target{Fleet: "eks-prod", Namespace: "shop"}
	good := sign(t, Envelope{Serial: 10}, cur)
	cases := []struct {
		name      string
		raw       []byte
		policy    Policy
		want      error
		wantKeyID string
	}{
		{"good", good, Policy{}, nil, "sec-2026-12"},
		{"signed by the old key during the overlap", sign(t, Envelope{Serial: 10}, old), Policy{}, nil, "sec-2026-11"},
		{"signed by both", sign(t, Envelope{Serial: 10}, old, cur), Policy{}, nil, "sec-2026-11"},
		{"same serial again", good, Policy{MinSerial: 10}, nil, "sec-2026-12"},
		{"unsigned", tamper(t, good, func(*Envelope) {}), Policy{}, nil, ""}, // replaced below
		{"signed by an unknown key only", sign(t, Envelope{Serial: 10}, stranger), Policy{}, ErrUnsigned, ""},
		{"rogue key under a trusted id", sign(t, Envelope{Serial: 10}, rogue), Policy{}, ErrBadSig, ""},
		{"tampered policy", tamper(t, good, func(e *Envelope) { e.Policy += "  - name: evil\n" }), Policy{}, ErrBadSig, ""},
		{"tampered serial", tamper(t, good, func(e *Envelope) { e.Serial = 99 }), Policy{}, ErrBadSig, ""},
		{"older serial", good, Policy{MinSerial: 11}, ErrOlder, ""},
		{"expired", good, Policy{Now: t0.Add(2 * time.Hour)}, ErrExpired, ""},
		{"expired but allowed (the cache at start)", good, Policy{Now: t0.Add(2 * time.Hour), AllowExpired: true}, nil, "sec-2026-12"},
		{"expiry instant is expired", good, Policy{Now: t0.Add(time.Hour)}, ErrExpired, ""},
		{"out of scope", sign(t, Envelope{Serial: 10, Scope: Scope{Namespaces: []string{"canary-*"}}}, cur), Policy{}, ErrOutOfScope, ""},
		{"out of scope, any scope asked", sign(t, Envelope{Serial: 10, Scope: Scope{Namespaces: []string{"canary-*"}}}, cur), Policy{AnyScope: true}, nil, "sec-2026-12"},
		{"not json", []byte("apps: []"), Policy{}, ErrMalformed, ""},
		{"unknown field", []byte(`{"envelope":"","signatures":[],"x":1}`), Policy{}, ErrMalformed, ""},
		{"trailing data", append(append([]byte{}, good...), []byte(`{}`)...), Policy{}, ErrMalformed, ""},
	}
	// "unsigned": the signatures removed.
	var b Bundle
	_ = json.Unmarshal(good, &b)
	b.Signatures = nil
	cases[4].raw, _ = json.Marshal(b)
	cases[4].want = ErrUnsigned
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := c.policy
			p.Trust, p.Target = trust, target
			if p.Now.IsZero() {
				p.Now = t0.Add(time.Minute)
			}
			v, err := Verify(c.raw, p)
			if !errors.Is(err, c.want) {
				t.Fatalf("Verify: %v, want %v", err, c.want)
			}
			if err != nil {
				if v != nil {
					t.Fatal("a refused bundle was returned")
				}
				if Reason(err) == "other" {
					t.Errorf("refusal %v has no reason label", err)
				}
				return
			}
			if v.KeyID != c.wantKeyID || v.Serial != 10 || v.Policy != testPolicy || v.ETag != ETagOf(c.raw) {
				t.Errorf("verified %+v", v)
			}
		})
	}
}

func TestSignRefuses(t *testing.T) {
	s, _ := testKey(1, "k")
	cases := []struct {
		name    string
		env     Envelope
		signers []Signer
		want    string
	}{
		{"no key", Envelope{Serial: 1, IssuedAt: t0, ExpiresAt: t0.Add(time.Hour), Scope: Scope{Fleets: []string{"*"}}, Policy: testPolicy}, nil, "no signing key"},
		{"serial 0", Envelope{IssuedAt: t0, ExpiresAt: t0.Add(time.Hour), Scope: Scope{Fleets: []string{"*"}}, Policy: testPolicy}, []Signer{s}, "serial"},
		{"no scope", Envelope{Serial: 1, IssuedAt: t0, ExpiresAt: t0.Add(time.Hour), Policy: testPolicy}, []Signer{s}, "scope"},
		{"bad pattern", Envelope{Serial: 1, IssuedAt: t0, ExpiresAt: t0.Add(time.Hour), Scope: Scope{Namespaces: []string{"["}}, Policy: testPolicy}, []Signer{s}, "pattern"},
		{"expires before issue", Envelope{Serial: 1, IssuedAt: t0, ExpiresAt: t0, Scope: Scope{Fleets: []string{"*"}}, Policy: testPolicy}, []Signer{s}, "not after"},
		{"empty policy", Envelope{Serial: 1, IssuedAt: t0, ExpiresAt: t0.Add(time.Hour), Scope: Scope{Fleets: []string{"*"}}}, []Signer{s}, "empty policy"},
		{"bad key id", Envelope{Serial: 1, IssuedAt: t0, ExpiresAt: t0.Add(time.Hour), Scope: Scope{Fleets: []string{"*"}}, Policy: testPolicy}, []Signer{{KeyID: "a b", Key: s.Key}}, "key id"},
		{"same key id twice", Envelope{Serial: 1, IssuedAt: t0, ExpiresAt: t0.Add(time.Hour), Scope: Scope{Fleets: []string{"*"}}, Policy: testPolicy}, []Signer{s, s}, "twice"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Sign(c.env, c.signers...)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Sign: %v, want an error about %q", err, c.want)
			}
		})
	}
}

// TestScopeMatches is the staged roll-out's matcher: canary scopes first,
// then everyone.
func TestScopeMatches(t *testing.T) {
	cases := []struct {
		scope Scope
		t     Target
		want  bool
	}{
		{Scope{Fleets: []string{"*"}}, Target{"eks-prod", "shop"}, true},
		{Scope{Fleets: []string{"*"}}, Target{"", ""}, true},
		{Scope{Namespaces: []string{"canary-*"}}, Target{"eks-prod", "canary-shop"}, true},
		{Scope{Namespaces: []string{"canary-*"}}, Target{"eks-prod", "shop"}, false},
		{Scope{Fleets: []string{"eks-staging"}}, Target{"eks-prod", "shop"}, false},
		{Scope{Fleets: []string{"eks-*"}, Namespaces: []string{"shop", "reports"}}, Target{"eks-prod", "reports"}, true},
		{Scope{Fleets: []string{"eks-*"}, Namespaces: []string{"shop", "reports"}}, Target{"ecs-prod", "reports"}, false},
		{Scope{}, Target{"eks-prod", "shop"}, false}, // an empty scope targets nobody
		{Scope{Fleets: []string{"["}}, Target{"[", ""}, false},
		{Scope{Namespaces: []string{"shop"}}, Target{"x", "shop/evil"}, false},
	}
	for _, c := range cases {
		if got := c.scope.Matches(c.t); got != c.want {
			t.Errorf("%+v matches %+v = %v, want %v", c.scope, c.t, got, c.want)
		}
	}
}

func TestKeysFiles(t *testing.T) {
	dir := t.TempDir()
	pubB64, err := GenerateKey(dir, "sec-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, "sec-1.key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, %v; want 0600", fi.Mode(), err)
	}
	if _, err := GenerateKey(dir, "sec-1", nil); err == nil {
		t.Fatal("an existing key was overwritten")
	}
	priv, err := LoadPrivateKey(filepath.Join(dir, "sec-1.key"))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ParsePublicKey(pubB64)
	if err != nil || !pub.Equal(priv.Public()) {
		t.Fatalf("public key %v does not match the private key", err)
	}
	_ = os.Chmod(filepath.Join(dir, "sec-1.key"), 0o644)
	if _, err := LoadPrivateKey(filepath.Join(dir, "sec-1.key")); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("a world-readable key was loaded: %v", err)
	}
	if _, err := ParseTrust(map[string]string{"k": "AAAA"}); err == nil {
		t.Fatal("a short public key was trusted")
	}
	// A directory that does not exist yet (the README's ~/keys) is created,
	// readable by its owner only.
	fresh := filepath.Join(dir, "new", "keys")
	if _, err := GenerateKey(fresh, "sec-2", nil); err != nil {
		t.Fatalf("GenerateKey into a new directory: %v", err)
	}
	if fi, err := os.Stat(fresh); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("the new key directory: %v, %v; want mode 0700", fi, err)
	}
}

// signRaw signs envelope bytes as they are (Sign would re-serialise them):
// what a publisher with a hand-made or buggy signer could produce.
func signRaw(envRaw []byte, s Signer) []byte {
	b := Bundle{Envelope: base64.StdEncoding.EncodeToString(envRaw),
		Signatures: []Signature{{KeyID: s.KeyID, Sig: base64.StdEncoding.EncodeToString(ed25519.Sign(s.Key, message(envRaw)))}}}
	out, _ := json.Marshal(b)
	return out
}

// TestVerifyStrictJSON: a bundle file or signed envelope that repeats a
// key, or spells one in another case, is refused as malformed (encoding/json
// would take the last repeated key and match any case, so the same signed
// bytes could mean another policy to another parser); and a bundle over
// MaxBundleBytes is refused before it is parsed.
func TestVerifyStrictJSON(t *testing.T) {
	s, pub := testKey(2, "sec-2026-12")
	trust := Trust{"sec-2026-12": pub}
	good := sign(t, Envelope{Serial: 10}, s)
	var b Bundle
	if err := json.Unmarshal(good, &b); err != nil {
		t.Fatal(err)
	}
	envRaw, _ := base64.StdEncoding.DecodeString(b.Envelope)
	evilEnv := strings.Replace(string(envRaw), `"policy":"`, `"policy":"apps: []\n`, 1) // what a first-wins parser would see
	sigJSON, _ := json.Marshal(b.Signatures)
	evilB64 := base64.StdEncoding.EncodeToString([]byte(evilEnv))
	for _, c := range []struct {
		name string
		raw  []byte
		want error
	}{
		{"the envelope re-signed as is (control)", signRaw(envRaw, s), nil},
		{"envelope key twice", []byte(`{"envelope":"` + evilB64 + `","envelope":"` + b.Envelope + `","signatures":` + string(sigJSON) + `}`), ErrMalformed},
		{"Envelope in another case", []byte(strings.Replace(string(good), `"envelope"`, `"Envelope"`, 1)), ErrMalformed},
		{"signature key in another case", []byte(strings.Replace(string(good), `"sig"`, `"SIG"`, 1)), ErrMalformed},
		{"signature key_id twice", []byte(strings.Replace(string(good), `"key_id"`, `"key_id": "other", "key_id"`, 1)), ErrMalformed},
		{"signed envelope with policy twice", signRaw([]byte(strings.Replace(string(envRaw), `"policy_sha256"`,
			`"policy":"apps: []\n","policy_sha256"`, 1)), s), ErrMalformed},
		{"signed envelope with Serial in another case", signRaw([]byte(strings.Replace(string(envRaw), `"serial"`, `"Serial"`, 1)), s), ErrMalformed},
		{"signed envelope with a long-s key", signRaw([]byte(strings.Replace(string(envRaw), `"scope"`, `"ſcope"`, 1)), s), ErrMalformed},
		{"over MaxBundleBytes (valid JSON: trailing blanks)", append(append([]byte{}, good...), bytes.Repeat([]byte(" "), MaxBundleBytes)...), ErrMalformed},
		{"at MaxBundleBytes", append(append([]byte{}, good...), bytes.Repeat([]byte(" "), MaxBundleBytes-len(good))...), nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			v, err := Verify(c.raw, Policy{Trust: trust, Target: Target{Fleet: "eks-prod", Namespace: "shop"}, Now: t0.Add(time.Minute)})
			if !errors.Is(err, c.want) {
				t.Fatalf("Verify: %v, want %v", err, c.want)
			}
			if err == nil && (v.Serial != 10 || v.Policy != testPolicy) {
				t.Fatalf("verified %+v", v)
			}
		})
	}
}
