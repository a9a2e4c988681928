package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/warden-egress/warden/authz/identity"
)

var keysTestNow = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

func keysCmd() keysCommand {
	return keysCommand{now: func() time.Time { return keysTestNow }, rand: rand.Reader}
}

func runKeys(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := keysCmd().run(args, &out, &errOut)
	return out.String(), errOut.String(), err
}

func genMaster(t *testing.T) (string, []byte) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "master.key")
	if _, _, err := runKeys(t, "genmaster", "--out", p); err != nil {
		t.Fatal(err)
	}
	key, err := identity.LoadMasterKey(p)
	if err != nil {
		t.Fatal(err)
	}
	return p, key
}

func TestKeysGenmaster(t *testing.T) {
	p := filepath.Join(t.TempDir(), "master.key")
	out, _, err := runKeys(t, "genmaster", "--out", p)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, %v", fi.Mode(), err)
	}
	key, _ := os.ReadFile(p)
	if !strings.Contains(out, "fingerprint "+identity.MasterKeyFingerprint(key)) || !strings.Contains(out, "defaultMode: 0400") {
		t.Errorf("output: %s", out)
	}
	if _, _, err := runKeys(t, "genmaster", "--out", p); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("overwrite: %v", err)
	}
	if again, _ := os.ReadFile(p); !bytes.Equal(again, key) {
		t.Fatal("the master key was overwritten")
	}
	if _, _, err := runKeys(t, "genmaster"); err == nil {
		t.Error("genmaster without --out must fail")
	}
}

func TestKeysIssueFormats(t *testing.T) {
	master, key := genMaster(t)
	wantExp := keysTestNow.Add(30 * 24 * time.Hour)
	check := func(t *testing.T, akid, secret string) {
		t.Helper()
		app, exp, err := identity.ParseKeyID(akid)
		if err != nil || app != "payments" || !exp.Equal(wantExp) {
			t.Errorf("key id %q: %q %v %v", akid, app, exp, err)
		}
		if secret != identity.SecretFor(key, akid) {
			t.Errorf("secret is not the derived one")
		}
	}

	out, _, err := runKeys(t, "issue", "--app", "payments", "--ttl", "30d", "--master-key", master)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^# Warden key for app payments, expires 2026-07-01T12:00:00Z\nAWS_ACCESS_KEY_ID=(WDN1[A-Z0-9]+)\nAWS_SECRET_ACCESS_KEY=([0-9a-f]{64})\n$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("env output:\n%s", out)
	}
	check(t, m[1], m[2])

	out, _, err = runKeys(t, "issue", "--app", "payments", "--ttl", "30d", "--master-key", master, "--format", "profile")
	if err != nil {
		t.Fatal(err)
	}
	m = regexp.MustCompile(`(?m)^\[warden-payments\]\naws_access_key_id = (WDN1[A-Z0-9]+)\naws_secret_access_key = ([0-9a-f]{64})\n$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("profile output:\n%s", out)
	}
	check(t, m[1], m[2])
	out, _, _ = runKeys(t, "issue", "--app", "payments", "--ttl", "30d", "--master-key", master, "--format", "profile", "--profile", "pay")
	if !strings.Contains(out, "\n[pay]\n") {
		t.Errorf("--profile: %s", out)
	}

	out, _, err = runKeys(t, "issue", "--app", "payments", "--ttl", "30d", "--master-key", master, "--format", "json")
	if err != nil {
		t.Fatal(err)
	}
	var j struct {
		Version                                        int
		AccessKeyID                                    string `json:"AccessKeyId"`
		SecretAccessKey, Expiration, App, SessionToken string
	}
	if err := json.Unmarshal([]byte(out), &j); err != nil {
		t.Fatalf("json output %q: %v", out, err)
	}
	if j.Version != 1 || j.Expiration != "2026-07-01T12:00:00Z" || j.App != "payments" || j.SessionToken != "" {
		t.Errorf("json: %+v", j)
	}
	check(t, j.AccessKeyID, j.SecretAccessKey)

	out, _, err = runKeys(t, "issue", "--app", "payments", "--ttl", "30d", "--master-key", master, "--format", "bearer")
	if err != nil {
		t.Fatal(err)
	}
	m = regexp.MustCompile(`(?m)^# Warden bearer key for app payments \(key id (WDN1[A-Z0-9]+)\), expires 2026-07-01T12:00:00Z\nOPENAI_API_KEY=(WDN1[A-Z0-9]+\.[A-Za-z0-9_-]{43})\nANTHROPIC_API_KEY=([^\n]+)\nAWS_BEARER_TOKEN_BEDROCK=([^\n]+)\n$`).FindStringSubmatch(out)
	if len(m) != 5 || m[3] != m[2] || m[4] != m[2] || !strings.HasPrefix(m[2], m[1]+".") {
		t.Fatalf("bearer output:\n%s", out)
	}
	if m[2] != identity.BearerKeyFor(key, m[1]) {
		t.Errorf("bearer key is not the derived one")
	}
	check(t, m[1], identity.SecretFor(key, m[1]))
}

func TestKeysIssueErrors(t *testing.T) {
	master, _ := genMaster(t)
	loose := filepath.Join(t.TempDir(), "loose.key")
	if err := os.WriteFile(loose, bytes.Repeat([]byte("k"), 32), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(loose, 0o644); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"no app":       {[]string{"--ttl", "1d", "--master-key", master}, "required"},
		"no master":    {[]string{"--app", "a", "--ttl", "1d"}, "required"},
		"bad app":      {[]string{"--app", "a b", "--ttl", "1d", "--master-key", master}, "--app"},
		"ttl too long": {[]string{"--app", "a", "--ttl", "366d", "--master-key", master}, "maximum of 365d"},
		"ttl units":    {[]string{"--app", "a", "--ttl", "30", "--master-key", master}, "--ttl"},
		"format":       {[]string{"--app", "a", "--ttl", "1d", "--master-key", master, "--format", "yaml"}, "--format"},
		"profile":      {[]string{"--app", "a", "--ttl", "1d", "--master-key", master, "--profile", "x"}, "--profile"},
		"loose master": {[]string{"--app", "a", "--ttl", "1d", "--master-key", loose}, "chmod 600"},
		"extra arg":    {[]string{"--app", "a", "--ttl", "1d", "--master-key", master, "more"}, "unexpected"},
	} {
		t.Run(name, func(t *testing.T) {
			out, _, err := runKeys(t, append([]string{"issue"}, tc.args...)...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if out != "" {
				t.Errorf("printed %q on failure", out)
			}
		})
	}
}

func TestParseTTL(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"30d": 30 * 24 * time.Hour, "12h": 12 * time.Hour, "90m": 90 * time.Minute, "1d12h": 36 * time.Hour,
		"1m": time.Minute, "365d": 365 * 24 * time.Hour, "8760h": 8760 * time.Hour, "1d1h1m": 25*time.Hour + time.Minute,
	} {
		if got, err := parseTTL(in); err != nil || got != want {
			t.Errorf("parseTTL(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0d", "30s", "30", "d", "1y", "366d", "8761h", "-1d", "1.5d", "1d ", "99999999999999999999d", "365d1m"} {
		if got, err := parseTTL(in); err == nil {
			t.Errorf("parseTTL(%q) = %v, want an error", in, got)
		}
	}
}

func TestKeysInspect(t *testing.T) {
	_, key := genMaster(t)
	akid, secret, err := identity.IssueKey(key, "payments", keysTestNow.Add(48*time.Hour+30*time.Minute), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	out, _, err := runKeys(t, "inspect", akid)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"app:           payments", "expires:       2026-06-03T12:30:00Z (valid for another 2d0h)", akid} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, secret) {
		t.Error("inspect printed the secret")
	}
	old, _, _ := identity.IssueKey(key, "payments", keysTestNow.Add(-3*time.Hour), rand.Reader)
	if out, _, _ := runKeys(t, "inspect", old); !strings.Contains(out, "EXPIRED 3h ago") {
		t.Errorf("expired key: %s", out)
	}
	if _, _, err := runKeys(t, "inspect", "AKIAIOSFODNN7EXAMPLE"); err == nil {
		t.Error("an AWS key id is not a Warden key")
	}
	if _, _, err := runKeys(t, "inspect"); err == nil {
		t.Error("inspect needs an id")
	}
}

// Through main's command switch.
func TestKeysCommandRegistered(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"keys", "help"}, &out, &errOut); code != 0 || !strings.Contains(out.String(), "warden keys issue") {
		t.Fatalf("keys help: %d %s %s", code, out.String(), errOut.String())
	}
	out.Reset()
	if code := run(context.Background(), []string{"keys", "nope"}, &out, &errOut); code != 2 {
		t.Errorf("unknown subcommand exit %d", code)
	}
	run(context.Background(), []string{"help"}, &out, &errOut)
	if !strings.Contains(out.String(), "warden keys") {
		t.Error("usage does not mention keys")
	}
}
