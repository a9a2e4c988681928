package main

import (
	"context"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/warden-egress/warden/audit"
	"github.com/warden-egress/warden/bundle"
	"github.com/warden-egress/warden/internal/miniotest"
)

// readmeSection returns the first ```sh block under the README heading.
func readmeSection(t *testing.T, heading string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := strings.Cut(string(data), "\n"+heading+"\n")
	if !ok {
		t.Fatalf("README.md has no %q", heading)
	}
	if i := strings.Index(sec, "\n## "); i >= 0 {
		sec = sec[:i]
	}
	_, block, ok := strings.Cut(sec, "```sh\n")
	if !ok {
		t.Fatalf("README.md %q has no ```sh block", heading)
	}
	block, _, _ = strings.Cut(block, "```")
	return block
}

// shellCommands splits a shell block into commands: comments dropped
// (a # at a line's start or after whitespace), "\" continuations joined.
func shellCommands(block string) []string {
	comment := regexp.MustCompile(`(^|\s)#.*$`)
	var cmds []string
	cur := ""
	for _, l := range strings.Split(block, "\n") {
		l = strings.TrimSpace(comment.ReplaceAllString(l, ""))
		cont := strings.HasSuffix(l, `\`)
		cur += " " + strings.TrimSuffix(l, `\`)
		if !cont {
			if c := strings.TrimSpace(cur); c != "" {
				cmds = append(cmds, c)
			}
			cur = ""
		}
	}
	return cmds
}

// shellWords splits a command into words as sh would for what the README
// uses: blanks, single and double quotes.
func shellWords(t *testing.T, cmd string) []string {
	t.Helper()
	var words []string
	var w strings.Builder
	inWord := false
	var quote rune
	for _, r := range cmd {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			w.WriteRune(r)
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == ' ' || r == '\t':
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
		default:
			w.WriteRune(r)
			inWord = true
		}
	}
	if quote != 0 {
		t.Fatalf("unbalanced quote in %q", cmd)
	}
	if inWord {
		words = append(words, w.String())
	}
	return words
}

// TestReadmeEditingThePolicy runs every warden command of the README's
// "Editing the policy" block, as written, in a fresh directory: the key
// into a directory that does not exist yet, `policy test` of the policy
// file that is then signed, the canary and the everyone bundle, publishing
// to a bundle service (the real handler over TLS, in place of the
// in-cluster name) and to an S3 prefix (MinIO). The block's other lines
// are the editor, curl of /readyz and /metrics, and the audit grep, whose
// pattern is checked against a record as Warden writes it.
func TestReadmeEditingThePolicy(t *testing.T) {
	block := readmeSection(t, "## Editing the policy")
	home := t.TempDir()
	t.Chdir(t.TempDir())

	// The bundle service, built once the key exists (it trusts the key's
	// public half, as `warden bundle serve --trust` would).
	var handler atomic.Pointer[bundle.Service]
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := handler.Load()
		if s == nil {
			http.Error(w, "no service yet", http.StatusServiceUnavailable)
			return
		}
		s.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw})
	if err := os.WriteFile("bundle-ca.pem", caPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	store := t.TempDir()

	var s3Flags []string
	m := miniotest.Start(t)
	if m != nil {
		m.MakeBucket(t, "sec-policy")
		t.Setenv("AWS_ACCESS_KEY_ID", m.AccessKey)
		t.Setenv("AWS_SECRET_ACCESS_KEY", m.SecretKey)
		t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
		s3Flags = []string{"--s3-endpoint", m.Endpoint, "--s3-region", m.Region, "--s3-path-style"}
	}

	const serviceURL = "https://warden-bundles.warden-system.svc:8443"
	var ran []string
	for _, cmd := range shellCommands(block) {
		words := shellWords(t, cmd)
		for i, w := range words {
			if rest, ok := strings.CutPrefix(w, "~/"); ok {
				words[i] = filepath.Join(home, rest)
			}
		}
		switch words[0] {
		case "$EDITOR":
			// The security team's edit: a policy file and its cases.
			if err := os.MkdirAll(filepath.Dir(words[1]), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(words[1], []byte(cliPolicy), 0o644); err != nil {
				t.Fatal(err)
			}
			cases := "cases:\n  - name: shop may use claude\n    strong_tags: {k8s.namespace: shop}\n    operation: Converse\n" +
				"    model: anthropic.claude-3-haiku-20240307-v1:0\n    expect: allow\n    app: shop\n" +
				"  - name: others may not\n    strong_tags: {k8s.namespace: reports}\n    operation: Converse\n" +
				"    model: anthropic.claude-3-haiku-20240307-v1:0\n    expect: deny\n"
			if err := os.WriteFile(filepath.Join(filepath.Dir(words[1]), "cases.yaml"), []byte(cases), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		case "curl", "kubectl":
			continue // a running Warden's /readyz, /metrics and audit: TestBundleFleetProcesses
		case "warden":
		default:
			t.Fatalf("README command %q: this test does not know %s", cmd, words[0])
		}
		args := words[1:]
		if len(args) >= 2 && args[0] == "policy" && args[1] == "publish" {
			for i, a := range args {
				switch {
				case a == serviceURL:
					if handler.Load() == nil {
						trust, err := parseTrustFlags([]string{"sec-2026-12=@" + filepath.Join(home, "keys", "sec-2026-12.pub")})
						if err != nil {
							t.Fatal(err)
						}
						svc, err := bundle.NewService(context.Background(), bundle.DirStore{Dir: store}, trust, nil)
						if err != nil {
							t.Fatal(err)
						}
						handler.Store(svc)
					}
					args[i] = ts.URL
				case strings.HasPrefix(a, "s3://"):
					if m == nil {
						t.Logf("no MinIO: not running %q", cmd)
						args = nil
					} else {
						args = append(args, s3Flags...)
					}
				}
				if args == nil {
					break
				}
			}
			if args == nil {
				continue
			}
		}
		out := runOK(t, args...)
		t.Logf("warden %s\n%s", strings.Join(args, " "), out)
		ran = append(ran, strings.Join(args[:2], " "))
	}
	for _, want := range []string{"keys bundle-key", "policy test", "policy sign", "policy publish"} {
		found := false
		for _, r := range ran {
			found = found || r == want
		}
		if !found {
			t.Errorf("the README block never runs warden %s (ran %q)", want, ran)
		}
	}

	// What was published verifies against the key, for its scope.
	pub := "sec-2026-12=@" + filepath.Join(home, "keys", "sec-2026-12.pub")
	if out := runOK(t, "policy", "verify", "--bundle", "canary.json", "--trust", pub, "--fleet", "eks-prod", "--namespace", "canary-shop"); !strings.Contains(out, "OK serial") {
		t.Errorf("verify canary.json: %q", out)
	}
	if e := runErr(t, "policy", "verify", "--bundle", "canary.json", "--trust", pub, "--fleet", "eks-prod", "--namespace", "shop"); !strings.Contains(e, "out_of_scope") {
		t.Errorf("canary.json for namespace shop: %q", e)
	}
	if entries, err := os.ReadDir(store); err != nil || len(entries) != 1 {
		t.Errorf("the bundle service's store holds %v (%v), want the canary bundle", entries, err)
	}

	// Step 6's pattern matches a record as Warden writes it.
	grep := regexp.MustCompile(`"policy_hash":"[^"]*","policy_serial":[0-9]*`)
	rec := audit.Record{PolicyHash: "4efa09ec972f", PolicySerial: 1796525442, Decision: "allow"}
	if line := rec.AppendJSON(nil); !grep.Match(line) {
		t.Errorf("the README's audit grep does not match a record: %s", line)
	}
}
