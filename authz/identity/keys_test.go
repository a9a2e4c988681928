package identity

import (
	"bytes"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var testMaster = []byte("0123456789abcdef0123456789abcdef-test-master")

// zeroReader yields zero bytes: deterministic nonces for tests.
type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func TestIssueKeyRoundTrip(t *testing.T) {
	exp := time.Date(2027, 3, 4, 5, 6, 7, 0, time.UTC)
	for _, app := range []string{"a", "payments", "Payments-Prod_2", "team/payments:prod@eu.west", strings.Repeat("z", MaxKeyAppLen)} {
		akid, secret, err := IssueKey(testMaster, app, exp, rand.Reader)
		if err != nil {
			t.Fatalf("IssueKey(%q): %v", app, err)
		}
		if !strings.HasPrefix(akid, "WDN1") || len(akid) > 128 || len(akid) < 16 {
			t.Errorf("%q: akid %q (%d chars)", app, akid, len(akid))
		}
		for _, c := range akid {
			if !('A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
				t.Errorf("%q: akid %q has %q, which is not an uppercase letter or digit", app, akid, c)
			}
		}
		gotApp, gotExp, err := ParseKeyID(akid)
		if err != nil || gotApp != app || !gotExp.Equal(exp) {
			t.Errorf("ParseKeyID(%q) = %q, %v, %v; want %q, %v", akid, gotApp, gotExp, err, app, exp)
		}
		if secret != SecretFor(testMaster, akid) || len(secret) != 64 {
			t.Errorf("%q: secret is not the derived one", app)
		}
		// A fresh nonce: same app and expiry, a different key.
		akid2, secret2, _ := IssueKey(testMaster, app, exp, rand.Reader)
		if akid2 == akid || secret2 == secret {
			t.Errorf("%q: two issues gave the same key", app)
		}
	}
	long, _, _ := IssueKey(testMaster, strings.Repeat("z", MaxKeyAppLen), time.Unix(maxKeyExpiry, 0), rand.Reader)
	if len(long) != maxKeyIDLen || maxKeyIDLen > 128 {
		t.Errorf("longest id is %d characters (max %d)", len(long), maxKeyIDLen)
	}
}

func TestIssueKeyRejects(t *testing.T) {
	exp := time.Now().Add(time.Hour)
	for name, tc := range map[string]struct {
		master  []byte
		app     string
		expires time.Time
		want    string
	}{
		"short master": {master: testMaster[:31], app: "a", expires: exp, want: "at least 32"},
		"empty app":    {master: testMaster, app: "", expires: exp, want: "empty"},
		"long app":     {master: testMaster, app: strings.Repeat("a", MaxKeyAppLen+1), expires: exp, want: "limit is 64"},
		"space in app": {master: testMaster, app: "pay ments", expires: exp, want: "not allowed"},
		"unicode app":  {master: testMaster, app: "paiements-é", expires: exp, want: "not allowed"},
		"zero expiry":  {master: testMaster, app: "a", expires: time.Unix(0, 0), want: "out of range"},
		"far expiry":   {master: testMaster, app: "a", expires: time.Unix(maxKeyExpiry+1, 0), want: "out of range"},
	} {
		t.Run(name, func(t *testing.T) {
			if _, _, err := IssueKey(tc.master, tc.app, tc.expires, rand.Reader); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	if _, _, err := IssueKey(testMaster, "a", exp, bytes.NewReader(nil)); err == nil {
		t.Error("a failing random source must fail the issue")
	}
}

func TestParseKeyIDRejects(t *testing.T) {
	good, _, err := IssueKey(testMaster, "payments", time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC), zeroReader{})
	if err != nil {
		t.Fatal(err)
	}
	b32 := base32.StdEncoding.WithPadding(base32.NoPadding)
	header := good[:keyHeaderLen]
	for name, tc := range map[string]struct {
		akid string
		want error
	}{
		"aws key":         {"AKIAIOSFODNN7EXAMPLE", ErrKeyMalformed},
		"empty":           {"", ErrKeyMalformed},
		"prefix only":     {"WDN", ErrKeyMalformed},
		"version 2":       {"WDN2" + good[4:], ErrKeyVersion},
		"version 0":       {"WDN0", ErrKeyVersion},
		"lowercase":       {strings.ToLower(good[:4]) + good[4:], ErrKeyMalformed},
		"lowercase body":  {good[:4] + strings.ToLower(good[4:]), ErrKeyMalformed},
		"no app":          {header, ErrKeyMalformed},
		"padding":         {good + "=", ErrKeyMalformed},
		"bad app length":  {good + "A", ErrKeyMalformed},    // base32 of no whole byte count
		"non-canonical":   {header + "MF", ErrKeyMalformed}, // "a" is ME; MF has trailing bits set
		"invalid app":     {header + b32.EncodeToString([]byte("a b")), ErrKeyMalformed},
		"too long":        {header + b32.EncodeToString(bytes.Repeat([]byte("a"), MaxKeyAppLen+1)), ErrKeyMalformed},
		"zero expiry":     {"WDN1" + b32.EncodeToString(make([]byte, 10)) + b32.EncodeToString([]byte("a")), ErrKeyMalformed},
		"digits 0,1,8,9":  {"WDN1" + "0000000000000000" + "ME", ErrKeyMalformed},
		"slash in id":     {good[:10] + "/" + good[11:], ErrKeyMalformed},
		"newline":         {good + "\n", ErrKeyMalformed},
		"trailing spaces": {good + "  ", ErrKeyMalformed},
	} {
		t.Run(name, func(t *testing.T) {
			if _, _, err := ParseKeyID(tc.akid); !errors.Is(err, tc.want) {
				t.Fatalf("ParseKeyID(%q) err = %v, want %v", tc.akid, err, tc.want)
			}
		})
	}
	if _, _, err := ParseKeyID(header + "ME"); err != nil {
		t.Errorf("the canonical spelling of app %q must parse: %v", "a", err)
	}
}

// Editing an id (another app, a later expiry) or changing the master key
// gives another secret.
func TestSecretForTamperAndMaster(t *testing.T) {
	exp := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	akid, secret, _ := IssueKey(testMaster, "payments", exp, zeroReader{})
	other, _, _ := IssueKey(testMaster, "paymentz", exp, zeroReader{})
	later, _, _ := IssueKey(testMaster, "payments", exp.Add(time.Hour), zeroReader{})
	if akid == other || akid == later {
		t.Fatal("ids must differ")
	}
	for _, id := range []string{other, later} {
		if SecretFor(testMaster, id) == secret {
			t.Errorf("%s shares the secret of %s", id, akid)
		}
	}
	otherMaster := bytes.Repeat([]byte{7}, 32)
	if SecretFor(otherMaster, akid) == secret {
		t.Error("another master key gives the same secret")
	}
	if MasterKeyFingerprint(testMaster) == MasterKeyFingerprint(otherMaster) || len(MasterKeyFingerprint(testMaster)) != 16 {
		t.Error("fingerprints")
	}
}

func writeKeyFile(t *testing.T, path string, data []byte, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // WriteFile is subject to the umask
		t.Fatal(err)
	}
}

func TestLoadMasterKeyModes(t *testing.T) {
	dir := t.TempDir()
	key := bytes.Repeat([]byte("k"), 32)
	for _, tc := range []struct {
		mode os.FileMode
		ok   bool
	}{{0o600, true}, {0o400, true}, {0o700, true}, {0o640, false}, {0o644, false}, {0o604, false}, {0o660, false}, {0o602, false}} {
		p := filepath.Join(dir, "master-"+tc.mode.String())
		writeKeyFile(t, p, key, tc.mode)
		got, err := LoadMasterKey(p)
		if tc.ok != (err == nil) {
			t.Errorf("mode %04o: err = %v", tc.mode, err)
			continue
		}
		if err != nil && !strings.Contains(err.Error(), "chmod 600") {
			t.Errorf("mode %04o: the error should tell the operator to chmod 600: %v", tc.mode, err)
		}
		if err == nil && !bytes.Equal(got, key) {
			t.Errorf("mode %04o: key %q", tc.mode, got)
		}
	}
	short := filepath.Join(dir, "short")
	writeKeyFile(t, short, key[:31], 0o600)
	if _, err := LoadMasterKey(short); err == nil || !strings.Contains(err.Error(), "at least 32") {
		t.Errorf("short key: %v", err)
	}
	if _, err := LoadMasterKey(filepath.Join(dir, "missing")); err == nil {
		t.Error("missing file must fail")
	}
	if _, err := LoadMasterKey(""); err == nil {
		t.Error("empty path must fail")
	}
}

// A Kubernetes Secret volume: the key file is a symlink to ..data/<name>,
// ..data a symlink to a timestamped directory. The mode check applies to the
// file behind the links.
func TestLoadMasterKeyKubernetesSecretLayout(t *testing.T) {
	mount := func(t *testing.T, mode os.FileMode, names ...string) string {
		dir := t.TempDir()
		ts := filepath.Join(dir, "..2026_01_02_03_04_05.123456789")
		if err := os.Mkdir(ts, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			writeKeyFile(t, filepath.Join(ts, n), bytes.Repeat([]byte("s"), 40), mode)
		}
		if err := os.Symlink(filepath.Base(ts), filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			if err := os.Symlink(filepath.Join("..data", n), filepath.Join(dir, n)); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	dir := mount(t, 0o400, "master.key")
	for _, p := range []string{dir, filepath.Join(dir, "master.key")} {
		if key, err := LoadMasterKey(p); err != nil || len(key) != 40 {
			t.Errorf("LoadMasterKey(%s) = %d bytes, %v", p, len(key), err)
		}
	}
	// The default Secret volume mode.
	dir = mount(t, 0o644, "master.key")
	if _, err := LoadMasterKey(dir); err == nil || !strings.Contains(err.Error(), "defaultMode: 0400") {
		t.Errorf("0644 secret: %v", err)
	}
	dir = mount(t, 0o400, "a.key", "b.key")
	if _, err := LoadMasterKey(dir); err == nil || !strings.Contains(err.Error(), "exactly one") {
		t.Errorf("two keys: %v", err)
	}
}

func TestGenerateMasterKey(t *testing.T) {
	p := filepath.Join(t.TempDir(), "master.key")
	fp, err := GenerateMasterKey(p, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, %v", fi.Mode(), err)
	}
	key, err := LoadMasterKey(p)
	if err != nil || len(key) < MinMasterKeyBytes || bytes.ContainsAny(key, "\n\r ") {
		t.Fatalf("generated key: %q, %v", key, err)
	}
	if MasterKeyFingerprint(key) != fp {
		t.Error("fingerprint of the written key differs")
	}
	if _, err := GenerateMasterKey(p, rand.Reader); err == nil || !strings.Contains(err.Error(), "never overwrites") {
		t.Fatalf("second genmaster: %v", err)
	}
	again, _ := os.ReadFile(p)
	if !bytes.Equal(again, key) {
		t.Fatal("the existing key was modified")
	}
	// A symlink pointing at a missing file is not followed into creation.
	link := filepath.Join(t.TempDir(), "link")
	target := filepath.Join(t.TempDir(), "target")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if _, err := GenerateMasterKey(link, rand.Reader); err == nil {
		t.Error("genmaster through a dangling symlink must fail (O_EXCL)")
	}
}

func FuzzParseKeyID(f *testing.F) {
	for _, app := range []string{"a", "payments", strings.Repeat("x", MaxKeyAppLen), "t/p:q@r.s-t_u"} {
		id, _, err := IssueKey(testMaster, app, time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC), zeroReader{})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(id)
	}
	for _, s := range []string{"", "WDN", "WDN1", "WDN2AAAAAAAAAAAAAAAAME", "AKIAIOSFODNN7EXAMPLE", "WDN1AAAAAAAAAAAAAAAAMF", "WDN1\x00"} {
		f.Add(s)
	}
	b32 := base32.StdEncoding.WithPadding(base32.NoPadding)
	f.Fuzz(func(t *testing.T, akid string) {
		app, exp, err := ParseKeyID(akid)
		if err != nil {
			return
		}
		if len(akid) > 128 || !IsWardenKeyID(akid) || ValidateKeyApp(app) != nil {
			t.Fatalf("accepted %q (app %q)", akid, app)
		}
		// The id is exactly what IssueKey writes for this app, expiry and nonce.
		fixed, err := b32.DecodeString(akid[len(KeyPrefix)+1 : keyHeaderLen])
		if err != nil {
			t.Fatal(err)
		}
		again, _, err := IssueKey(testMaster, app, exp, bytes.NewReader(fixed[5:]))
		if err != nil || again != akid {
			t.Fatalf("re-issue of %q gave %q, %v", akid, again, err)
		}
	})
}
