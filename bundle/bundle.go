// Package bundle is Warden's signed policy bundle: a policy file wrapped in
// an envelope (serial, expiry, target scope) and signed with Ed25519 by one
// or more keys, each named by a key id. Verification is against a set of
// trusted keys, so keys rotate with overlap (sign with the old and the new
// key, then retire the old one).
//
// The signed bytes are the envelope exactly as it travels (base64 in the
// bundle file), so verification never re-serialises anything: what was
// signed is what is parsed. Each signature covers SignContext followed by
// those bytes (domain separation: no other Ed25519 message of Warden's can
// be replayed as a bundle).
//
// The package imports nothing of Warden's: the policy is opaque bytes here,
// validated by whoever applies it (config, proxy).
package bundle

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"regexp"
	"sort"
	"strings"
	"time"
)

// Format is the envelope's format tag.
const Format = "warden.policy-bundle/v1"

// SignContext prefixes every signed message.
const SignContext = "warden policy bundle v1\x00"

// MaxBundleBytes bounds a bundle file (and so the policy inside it).
const MaxBundleBytes = 4 << 20

// Bundle is the file format: the envelope's bytes and signatures over them.
type Bundle struct {
	// Envelope is the canonical envelope JSON, base64 (std) encoded.
	Envelope   string      `json:"envelope"`
	Signatures []Signature `json:"signatures"`
}

// Signature is one key's Ed25519 signature over SignContext + envelope.
type Signature struct {
	KeyID string `json:"key_id"`
	Sig   string `json:"sig"` // base64 std
}

// Envelope is what the signatures cover.
type Envelope struct {
	Format string `json:"format"`
	// Serial increases with every bundle a publisher signs; a Warden
	// refuses a bundle whose serial is lower than the one it runs.
	Serial uint64 `json:"serial"`
	// IssuedAt and ExpiresAt (RFC 3339, UTC): past ExpiresAt a bundle is
	// refused, and a Warden still running it says so.
	IssuedAt  time.Time `json:"issued_at"`
	ExpiresAt time.Time `json:"expires_at"`
	Scope     Scope     `json:"scope"`
	// PolicySHA256 is the hex SHA-256 of Policy (a check on the publisher's
	// side, and a stable name for the bytes).
	PolicySHA256 string `json:"policy_sha256"`
	// Policy is the policy file (YAML: apps, deny, mode, guards).
	Policy string `json:"policy"`
}

// Scope says which Wardens a bundle is for. A Warden matches when its fleet
// matches one of Fleets and its namespace one of Namespaces; an empty list
// matches anything in that dimension, but a scope must name at least one of
// the two ("*" targets every Warden). Entries are path.Match patterns
// ("canary-*", "shop").
type Scope struct {
	Fleets     []string `json:"fleets,omitempty"`
	Namespaces []string `json:"namespaces,omitempty"`
}

// Target is where a Warden runs, matched against a Scope.
type Target struct {
	Fleet     string
	Namespace string
}

// Errors a verification answers; each refusal wraps one of them.
var (
	ErrMalformed  = errors.New("malformed bundle")
	ErrUnsigned   = errors.New("bundle has no signature by a trusted key")
	ErrBadSig     = errors.New("bundle signature does not verify (tampered or wrong key)")
	ErrExpired    = errors.New("bundle has expired")
	ErrOutOfScope = errors.New("bundle is not for this Warden's scope")
	ErrOlder      = errors.New("bundle serial is older than the running one (rollback refused)")
)

// Reason is a short label for a refusal (metrics, logs).
func Reason(err error) string {
	for _, r := range []struct {
		err  error
		name string
	}{{ErrMalformed, "malformed"}, {ErrUnsigned, "unsigned"}, {ErrBadSig, "bad_signature"}, {ErrExpired, "expired"},
		{ErrOutOfScope, "out_of_scope"}, {ErrOlder, "older_serial"}} {
		if errors.Is(err, r.err) {
			return r.name
		}
	}
	return "other"
}

var keyIDRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// ValidKeyID says whether id may name a key.
func ValidKeyID(id string) error {
	if !keyIDRe.MatchString(id) {
		return fmt.Errorf("key id %q: want 1-64 of A-Z a-z 0-9 . _ -, starting with a letter or digit", id)
	}
	return nil
}

// Validate checks a scope's patterns.
func (s Scope) Validate() error {
	if len(s.Fleets) == 0 && len(s.Namespaces) == 0 {
		return errors.New("scope: name at least one fleet or namespace pattern (\"*\" for every Warden)")
	}
	for _, p := range append(append([]string{}, s.Fleets...), s.Namespaces...) {
		if p == "" {
			return errors.New("scope: empty pattern")
		}
		if _, err := path.Match(p, ""); err != nil {
			return fmt.Errorf("scope: pattern %q: %w", p, err)
		}
	}
	return nil
}

// Matches says whether the scope targets t.
func (s Scope) Matches(t Target) bool {
	if s.Validate() != nil {
		return false
	}
	return matchAny(s.Fleets, t.Fleet) && matchAny(s.Namespaces, t.Namespace)
}

func matchAny(patterns []string, v string) bool {
	if len(patterns) == 0 {
		return true
	}
	for _, p := range patterns {
		if ok, _ := path.Match(p, v); ok {
			return true
		}
	}
	return false
}

// String is the scope for logs: "fleets=a,b namespaces=c".
func (s Scope) String() string {
	var parts []string
	if len(s.Fleets) > 0 {
		parts = append(parts, "fleets="+strings.Join(s.Fleets, ","))
	}
	if len(s.Namespaces) > 0 {
		parts = append(parts, "namespaces="+strings.Join(s.Namespaces, ","))
	}
	return strings.Join(parts, " ")
}

// Signer is one private key and its id.
type Signer struct {
	KeyID string
	Key   ed25519.PrivateKey
}

// Sign builds a bundle of env signed by every signer. It fills Format and
// PolicySHA256 and checks what Verify would refuse of a fresh bundle.
func Sign(env Envelope, signers ...Signer) ([]byte, error) {
	if len(signers) == 0 {
		return nil, errors.New("sign: no signing key")
	}
	env.Format = Format
	sum := sha256.Sum256([]byte(env.Policy))
	env.PolicySHA256 = hex.EncodeToString(sum[:])
	env.IssuedAt = env.IssuedAt.UTC().Truncate(time.Second)
	env.ExpiresAt = env.ExpiresAt.UTC().Truncate(time.Second)
	if err := env.check(); err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	raw, err := json.Marshal(env)
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	b := Bundle{Envelope: base64.StdEncoding.EncodeToString(raw)}
	seen := map[string]bool{}
	for _, s := range signers {
		if err := ValidKeyID(s.KeyID); err != nil {
			return nil, fmt.Errorf("sign: %w", err)
		}
		if seen[s.KeyID] {
			return nil, fmt.Errorf("sign: key id %q given twice", s.KeyID)
		}
		seen[s.KeyID] = true
		if len(s.Key) != ed25519.PrivateKeySize {
			return nil, fmt.Errorf("sign: key %q is not an Ed25519 private key", s.KeyID)
		}
		sig := ed25519.Sign(s.Key, message(raw))
		b.Signatures = append(b.Signatures, Signature{KeyID: s.KeyID, Sig: base64.StdEncoding.EncodeToString(sig)})
	}
	out, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	return append(out, '\n'), nil
}

func message(envelope []byte) []byte {
	return append([]byte(SignContext), envelope...)
}

func (e *Envelope) check() error {
	if e.Format != Format {
		return fmt.Errorf("%w: format %q, want %q", ErrMalformed, e.Format, Format)
	}
	if e.Serial == 0 {
		return fmt.Errorf("%w: serial must be at least 1", ErrMalformed)
	}
	if e.IssuedAt.IsZero() || e.ExpiresAt.IsZero() {
		return fmt.Errorf("%w: issued_at and expires_at are required", ErrMalformed)
	}
	if !e.ExpiresAt.After(e.IssuedAt) {
		return fmt.Errorf("%w: expires_at %s is not after issued_at %s", ErrMalformed, e.ExpiresAt.Format(time.RFC3339), e.IssuedAt.Format(time.RFC3339))
	}
	if err := e.Scope.Validate(); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if strings.TrimSpace(e.Policy) == "" {
		return fmt.Errorf("%w: empty policy", ErrMalformed)
	}
	sum := sha256.Sum256([]byte(e.Policy))
	if e.PolicySHA256 != hex.EncodeToString(sum[:]) {
		return fmt.Errorf("%w: policy_sha256 does not match the policy", ErrMalformed)
	}
	return nil
}

// Verified is a bundle whose signature, envelope and scope checked out.
type Verified struct {
	Envelope
	KeyID string   // the trusted key whose signature was accepted
	Raw   []byte   // the bundle file as received
	ETag  string   // ETagOf(Raw)
	Keys  []string // every trusted key id that signed
}

// ETagOf names a bundle's bytes for HTTP caching.
func ETagOf(raw []byte) string {
	sum := sha256.Sum256(raw)
	return `"` + hex.EncodeToString(sum[:12]) + `"`
}

// Trust is the set of public keys a Warden accepts bundles from.
type Trust map[string]ed25519.PublicKey

// ParseTrust builds a Trust from id → base64 public key.
func ParseTrust(keys map[string]string) (Trust, error) {
	t := Trust{}
	ids := make([]string, 0, len(keys))
	for id := range keys {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		if err := ValidKeyID(id); err != nil {
			return nil, err
		}
		pub, err := ParsePublicKey(keys[id])
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", id, err)
		}
		t[id] = pub
	}
	if len(t) == 0 {
		return nil, errors.New("no trusted bundle keys")
	}
	return t, nil
}

// ParsePublicKey reads a base64 (std) Ed25519 public key.
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("public key is not base64: %w", err)
	}
	if len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("public key is %d bytes, want %d (Ed25519)", len(b), ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(b), nil
}

// Parse decodes a bundle file and its envelope without checking any
// signature (for tools that show a bundle; never apply its result).
func Parse(raw []byte) (*Bundle, *Envelope, []byte, error) {
	if len(raw) > MaxBundleBytes {
		return nil, nil, nil, fmt.Errorf("%w: %d bytes, at most %d", ErrMalformed, len(raw), MaxBundleBytes)
	}
	var b Bundle
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		return nil, nil, nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if dec.More() {
		return nil, nil, nil, fmt.Errorf("%w: trailing data after the bundle", ErrMalformed)
	}
	if err := checkKeys(raw); err != nil {
		return nil, nil, nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	envRaw, err := base64.StdEncoding.DecodeString(b.Envelope)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%w: envelope is not base64: %v", ErrMalformed, err)
	}
	var env Envelope
	dec = json.NewDecoder(bytes.NewReader(envRaw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&env); err != nil {
		return nil, nil, nil, fmt.Errorf("%w: envelope: %v", ErrMalformed, err)
	}
	if dec.More() {
		return nil, nil, nil, fmt.Errorf("%w: trailing data after the envelope", ErrMalformed)
	}
	if err := checkKeys(envRaw); err != nil {
		return nil, nil, nil, fmt.Errorf("%w: envelope: %v", ErrMalformed, err)
	}
	return &b, &env, envRaw, nil
}

// maxKeyDepth bounds how deep checkKeys walks: a bundle's objects nest
// three deep (bundle, signatures, signature).
const maxKeyDepth = 8

var keyNameRe = regexp.MustCompile(`^[a-z0-9_]+$`)

// checkKeys refuses a JSON document (already decoded strictly) in which an
// object repeats a key, or spells one other than exactly as the format
// does (lower-case ASCII): encoding/json would take the last of repeated
// keys and match names case-insensitively (also "ſig" for "sig"), so the
// same signed bytes could mean something else to another JSON parser.
func checkKeys(raw []byte) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	return walkKeys(dec, 0)
}

func walkKeys(dec *json.Decoder, depth int) error {
	if depth > maxKeyDepth {
		return fmt.Errorf("nested deeper than %d", maxKeyDepth)
	}
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return nil
	}
	if d == '[' {
		for dec.More() {
			if err := walkKeys(dec, depth+1); err != nil {
				return err
			}
		}
		_, err = dec.Token()
		return err
	}
	seen := map[string]bool{}
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			return err
		}
		k, _ := kt.(string)
		if !keyNameRe.MatchString(k) {
			return fmt.Errorf("key %q is not spelt as the format names it", k)
		}
		if seen[k] {
			return fmt.Errorf("key %q given twice", k)
		}
		seen[k] = true
		if err := walkKeys(dec, depth+1); err != nil {
			return err
		}
	}
	_, err = dec.Token()
	return err
}

// Policy is what a Warden checks a bundle against.
type Policy struct {
	Trust  Trust
	Target Target
	// MinSerial refuses bundles below it (the running bundle's serial);
	// the running serial itself is accepted (the same bundle again).
	MinSerial uint64
	Now       time.Time
	// AllowExpired accepts an expired bundle (the last good one from the
	// cache at start: kept, and reported as expired).
	AllowExpired bool
	// AnyScope skips the scope check (the bundle service, which serves
	// many scopes, and `warden policy verify` without a target).
	AnyScope bool
}

// Verify checks raw against p: a valid signature by a trusted key (every
// signature by a trusted key must verify), a well-formed envelope, the
// scope, the expiry and the serial. The error wraps one of the Err values.
func Verify(raw []byte, p Policy) (*Verified, error) {
	b, env, envRaw, err := Parse(raw)
	if err != nil {
		return nil, err
	}
	var good []string
	for _, s := range b.Signatures {
		pub, ok := p.Trust[s.KeyID]
		if !ok {
			continue // another Warden's key, or one retired here
		}
		sig, err := base64.StdEncoding.DecodeString(s.Sig)
		if err != nil || !ed25519.Verify(pub, message(envRaw), sig) {
			return nil, fmt.Errorf("%w: key %q", ErrBadSig, s.KeyID)
		}
		good = append(good, s.KeyID)
	}
	if len(good) == 0 {
		ids := make([]string, 0, len(b.Signatures))
		for _, s := range b.Signatures {
			ids = append(ids, s.KeyID)
		}
		return nil, fmt.Errorf("%w (signed by %q; trusted: %q)", ErrUnsigned, ids, p.Trust.ids())
	}
	if err := env.check(); err != nil {
		return nil, err
	}
	if !p.AnyScope && !env.Scope.Matches(p.Target) {
		return nil, fmt.Errorf("%w: bundle %d is for %s; this Warden is fleet %q namespace %q", ErrOutOfScope, env.Serial, env.Scope, p.Target.Fleet, p.Target.Namespace)
	}
	if !p.AllowExpired && !p.Now.IsZero() && !p.Now.Before(env.ExpiresAt) {
		return nil, fmt.Errorf("%w: bundle %d expired at %s", ErrExpired, env.Serial, env.ExpiresAt.Format(time.RFC3339))
	}
	if env.Serial < p.MinSerial {
		return nil, fmt.Errorf("%w: bundle %d < running %d", ErrOlder, env.Serial, p.MinSerial)
	}
	return &Verified{Envelope: *env, KeyID: good[0], Keys: good, Raw: raw, ETag: ETagOf(raw)}, nil
}

func (t Trust) ids() []string {
	ids := make([]string, 0, len(t))
	for id := range t {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}
