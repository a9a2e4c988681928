package identity

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Warden-issued keys are SigV4 credentials an app uses exactly like an AWS
// access key (env vars or an ~/.aws/credentials profile), so it needs no code
// change. They are derived, never stored: the access key id encodes the app
// and an expiry, and the secret is HMAC-SHA256(master key, access key id), so
// any Warden instance holding the master key can verify any key, and a key id
// edited to name another app or a later expiry has a different secret.
//
// Access key id layout (uppercase letters and digits only, 22–123 chars):
//
//	"WDN" | version "1" | base32(expiry unix seconds, 5 bytes BE ‖ nonce, 5 bytes) | base32(app)
//
// base32 is RFC 4648's alphabet (A–Z, 2–7) without padding. The fixed-width
// part comes first, so the app needs no delimiter. The nonce makes every
// issued key distinct (and separately revocable) even for the same app and
// expiry; it is not secret.

// KeyPrefix starts every Warden-issued access key id.
const KeyPrefix = "WDN"

// keyVersion is the only key scheme this release issues and verifies.
const keyVersion = '1'

const (
	// MaxKeyAppLen bounds the app name carried in a key id (so the id stays
	// within the 128 characters AWS allows for an access key id).
	MaxKeyAppLen = 64
	// MinMasterKeyBytes is the shortest master key accepted.
	MinMasterKeyBytes = 32

	keyFixedBytes = 10                                     // expiry (5) + nonce (5)
	keyFixedChars = keyFixedBytes * 8 / 5                  // 16 base32 characters
	keyHeaderLen  = len(KeyPrefix) + 1 + keyFixedChars     // prefix, version, fixed part
	maxKeyIDLen   = keyHeaderLen + (MaxKeyAppLen*8+4)/5    // 123
	maxKeyExpiry  = 1<<40 - 1                              // 5 bytes of unix seconds (year 36812)
	keyNonceBytes = keyFixedBytes - 5                      // 40 bits: distinct, not secret
	keyIDAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789" // what ids may contain
)

var keyB32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// Errors for Warden-issued keys; use errors.Is.
var (
	ErrKeyMalformed = errors.New("not a well-formed Warden-issued key id")
	ErrKeyVersion   = errors.New("unknown Warden key version")
	ErrKeyExpired   = errors.New("key expired")
	ErrKeyRevoked   = errors.New("key revoked")
	ErrKeySignature = errors.New("signature does not match")
)

// IsWardenKeyID reports whether akid carries Warden's prefix: a cheap check
// that says the caller presents a Warden-issued key, not that it is valid.
func IsWardenKeyID(akid string) bool { return strings.HasPrefix(akid, KeyPrefix) }

// ValidateKeyApp checks an app name for a key: 1–64 characters from
// A–Z a–z 0–9 and . _ - : / @ (names that read unambiguously in logs and
// policy files).
func ValidateKeyApp(app string) error {
	if app == "" {
		return errors.New("app name is empty")
	}
	if len(app) > MaxKeyAppLen {
		return fmt.Errorf("app name is %d characters; the limit is %d", len(app), MaxKeyAppLen)
	}
	for i := 0; i < len(app); i++ {
		c := app[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("._-:/@", c) >= 0) {
			return fmt.Errorf("app name %q: character %q is not allowed (use letters, digits and . _ - : / @)", app, c)
		}
	}
	return nil
}

// IssueKey derives a new key for app, valid until expires (second
// precision). rand supplies the nonce (crypto/rand.Reader in production).
func IssueKey(master []byte, app string, expires time.Time, rand io.Reader) (akid, secret string, err error) {
	if len(master) < MinMasterKeyBytes {
		return "", "", fmt.Errorf("master key is %d bytes; at least %d are required", len(master), MinMasterKeyBytes)
	}
	if err := ValidateKeyApp(app); err != nil {
		return "", "", err
	}
	exp := expires.Unix()
	if exp <= 0 || exp > maxKeyExpiry {
		return "", "", fmt.Errorf("expiry %s is out of range", expires.UTC().Format(time.RFC3339))
	}
	var fixed [keyFixedBytes]byte
	var e [8]byte
	binary.BigEndian.PutUint64(e[:], uint64(exp))
	copy(fixed[:5], e[3:])
	if _, err := io.ReadFull(rand, fixed[5:5+keyNonceBytes]); err != nil {
		return "", "", fmt.Errorf("reading random nonce: %w", err)
	}
	var b strings.Builder
	b.Grow(maxKeyIDLen)
	b.WriteString(KeyPrefix)
	b.WriteByte(keyVersion)
	b.WriteString(keyB32.EncodeToString(fixed[:]))
	b.WriteString(keyB32.EncodeToString([]byte(app)))
	akid = b.String()
	return akid, SecretFor(master, akid), nil
}

// ParseKeyID decodes a Warden-issued access key id. It checks form only:
// whether the key is genuine is decided by its signature.
func ParseKeyID(akid string) (app string, expires time.Time, err error) {
	if !IsWardenKeyID(akid) {
		return "", time.Time{}, fmt.Errorf("%w: missing the %s prefix", ErrKeyMalformed, KeyPrefix)
	}
	if len(akid) <= len(KeyPrefix) {
		return "", time.Time{}, fmt.Errorf("%w: too short", ErrKeyMalformed)
	}
	if v := akid[len(KeyPrefix)]; v != keyVersion {
		return "", time.Time{}, fmt.Errorf("%w %q (this Warden knows version %c)", ErrKeyVersion, printableByte(v), keyVersion)
	}
	if len(akid) > maxKeyIDLen {
		return "", time.Time{}, fmt.Errorf("%w: %d characters, more than %d", ErrKeyMalformed, len(akid), maxKeyIDLen)
	}
	if len(akid) < keyHeaderLen+2 {
		return "", time.Time{}, fmt.Errorf("%w: too short", ErrKeyMalformed)
	}
	for i := 0; i < len(akid); i++ {
		if strings.IndexByte(keyIDAlphabet, akid[i]) < 0 {
			return "", time.Time{}, fmt.Errorf("%w: character %q at %d", ErrKeyMalformed, printableByte(akid[i]), i)
		}
	}
	fixedEnc, appEnc := akid[len(KeyPrefix)+1:keyHeaderLen], akid[keyHeaderLen:]
	fixed, err := keyB32.DecodeString(fixedEnc)
	if err != nil || len(fixed) != keyFixedBytes {
		return "", time.Time{}, fmt.Errorf("%w: bad expiry field", ErrKeyMalformed)
	}
	appBytes, err := keyB32.DecodeString(appEnc)
	// Only the canonical encoding is accepted, so an app and expiry have one
	// spelling (revocation lists compare ids as strings).
	if err != nil || keyB32.EncodeToString(appBytes) != appEnc {
		return "", time.Time{}, fmt.Errorf("%w: bad app field", ErrKeyMalformed)
	}
	app = string(appBytes)
	if err := ValidateKeyApp(app); err != nil {
		return "", time.Time{}, fmt.Errorf("%w: %v", ErrKeyMalformed, err)
	}
	var e [8]byte
	copy(e[3:], fixed[:5])
	exp := int64(binary.BigEndian.Uint64(e[:]))
	if exp == 0 {
		return "", time.Time{}, fmt.Errorf("%w: zero expiry", ErrKeyMalformed)
	}
	return app, time.Unix(exp, 0).UTC(), nil
}

func printableByte(c byte) string {
	if c >= 0x20 && c < 0x7f {
		return string(rune(c))
	}
	return fmt.Sprintf("\\x%02x", c)
}

// SecretFor returns the secret access key of akid under master: lowercase hex
// of HMAC-SHA256(master, akid). It does not check akid.
func SecretFor(master []byte, akid string) string {
	m := hmac.New(sha256.New, master)
	m.Write([]byte(akid))
	return hex.EncodeToString(m.Sum(nil))
}

// MasterKeyFingerprint is a short, non-secret name for a master key, so
// operators can check that Warden instances share one (logged at start,
// printed by genmaster). It reveals nothing usable about the key.
func MasterKeyFingerprint(master []byte) string {
	m := hmac.New(sha256.New, master)
	m.Write([]byte("warden master key fingerprint"))
	return hex.EncodeToString(m.Sum(nil)[:8])
}

// LoadMasterKey reads a master key. path is the key file, or a directory
// holding exactly one key file (a Kubernetes Secret volume: the entries
// starting with ".." are the kubelet's own and are skipped). The key is the
// file's bytes exactly, at least 32 of them. A file readable or writable by
// group or others is refused: anyone who reads it can mint keys for any app.
// Kubernetes Secret volumes are 0644 unless the volume sets
// defaultMode: 0400 (and setting fsGroup on the pod adds group read).
func LoadMasterKey(path string) ([]byte, error) {
	if path == "" {
		return nil, errors.New("master key: no file given")
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("master key: %w", err)
	}
	if fi.IsDir() {
		file, err := keyFileInDir(path)
		if err != nil {
			return nil, fmt.Errorf("master key: %w", err)
		}
		path = file
		if fi, err = os.Stat(path); err != nil {
			return nil, fmt.Errorf("master key: %w", err)
		}
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("master key %s: not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("master key %s: mode %04o lets group or others read it; run chmod 600 %s "+
			"(Kubernetes Secret volume: set defaultMode: 0400 and no fsGroup)", path, perm, path)
	}
	key, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("master key: %w", err)
	}
	if len(key) < MinMasterKeyBytes {
		return nil, fmt.Errorf("master key %s: %d bytes; at least %d random bytes are required (warden keys genmaster --out FILE)",
			path, len(key), MinMasterKeyBytes)
	}
	return key, nil
}

// keyFileInDir returns the one key file in a directory.
func keyFileInDir(dir string) (string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", err
	}
	var names []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			continue // ..data, ..2025_01_01_… (kubelet), dotfiles
		}
		names = append(names, e.Name())
	}
	sort.Strings(names)
	if len(names) != 1 {
		return "", fmt.Errorf("directory %s must hold exactly one key file, found %d (%s); name the file instead",
			dir, len(names), strings.Join(names, ", "))
	}
	return filepath.Join(dir, names[0]), nil
}

// GenerateMasterKey creates path with a new master key (32 random bytes,
// written as standard base64 text without a newline, so it survives copying
// into a Kubernetes Secret either with --from-file or as a literal) and mode
// 0600. It never overwrites an existing file.
func GenerateMasterKey(path string, rand io.Reader) (fingerprint string, err error) {
	raw := make([]byte, MinMasterKeyBytes)
	if _, err := io.ReadFull(rand, raw); err != nil {
		return "", fmt.Errorf("reading random bytes: %w", err)
	}
	key := []byte(base64.StdEncoding.EncodeToString(raw))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return "", fmt.Errorf("%s already exists; Warden never overwrites a master key (every key issued with it would stop working)", path)
		}
		return "", err
	}
	// The umask can only remove bits, but make the mode exact anyway.
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		os.Remove(path)
		return "", err
	}
	if _, err := f.Write(key); err != nil {
		f.Close()
		os.Remove(path)
		return "", err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return "", err
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return "", err
	}
	return MasterKeyFingerprint(key), nil
}
