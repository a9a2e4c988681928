//go:build linux

package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warden-egress/warden/audit"
	"github.com/warden-egress/warden/config"
	"github.com/warden-egress/warden/internal/testenv"
)

// The image tests read the Dockerfile rather than repeat it, so the build
// flags, the user, the spool volume and the command they check are the
// ones the image has.

const imageTestVersion = "v9.9.9-imagetest"

// dockerfile is the Dockerfile's instructions, continuation lines joined.
type dockerfile struct {
	instrs []string // "RUN …", "COPY …", …
	text   string
}

func readDockerfile(t *testing.T) dockerfile {
	t.Helper()
	data, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	d := dockerfile{text: string(data)}
	var cur strings.Builder
	sc := bufio.NewScanner(strings.NewReader(string(data)))
	for sc.Scan() {
		line := sc.Text()
		if cur.Len() == 0 && (strings.HasPrefix(strings.TrimSpace(line), "#") || strings.TrimSpace(line) == "") {
			continue
		}
		if s, ok := strings.CutSuffix(line, "\\"); ok {
			cur.WriteString(strings.TrimSpace(s) + " ")
			continue
		}
		cur.WriteString(strings.TrimSpace(line))
		d.instrs = append(d.instrs, cur.String())
		cur.Reset()
	}
	return d
}

// find returns the instructions with the keyword whose text matches re.
func (d dockerfile) find(keyword string, re *regexp.Regexp) []string {
	var out []string
	for _, in := range d.instrs {
		if strings.HasPrefix(in, keyword+" ") && re.MatchString(in) {
			out = append(out, in)
		}
	}
	return out
}

// buildCommand is the shell command of the RUN that builds Warden, its
// --mount options dropped: what the build stage's /bin/sh runs.
func (d dockerfile) buildCommand(t *testing.T) string {
	t.Helper()
	runs := d.find("RUN", regexp.MustCompile(`go build`))
	if len(runs) != 1 {
		t.Fatalf("want one RUN with go build in the Dockerfile, got %q", runs)
	}
	words := strings.Fields(strings.TrimPrefix(runs[0], "RUN "))
	for len(words) > 0 && strings.HasPrefix(words[0], "--mount=") {
		words = words[1:]
	}
	return strings.Join(words, " ")
}

var (
	imageBuildOnce sync.Once
	imageBuildPath string
	imageBuildErr  error
	imageBuildLog  string
)

// buildImageBinary builds Warden exactly as the Dockerfile's build stage
// does: its RUN line through sh, with the ARG VERSION set, the output
// moved from /out/warden to a temporary directory. Once per test binary.
func buildImageBinary(t *testing.T) string {
	t.Helper()
	d := readDockerfile(t)
	cmd := d.buildCommand(t)
	for _, want := range []string{"CGO_ENABLED=0", "go build", "-trimpath", "-X main.version=${VERSION}", "-o /out/warden", "./cmd/warden"} {
		if !strings.Contains(cmd, want) {
			t.Fatalf("the Dockerfile's build line %q lacks %q", cmd, want)
		}
	}
	if len(d.find("ARG", regexp.MustCompile(`^ARG VERSION\b`))) != 1 {
		t.Fatal("the Dockerfile declares no ARG VERSION for the build line's ${VERSION}")
	}
	imageBuildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "warden-image-*")
		if err != nil {
			imageBuildErr = err
			return
		}
		imageBuildPath = filepath.Join(dir, "warden")
		root, _ := filepath.Abs("../..")
		c := exec.Command("sh", "-c", strings.Replace(cmd, "-o /out/warden", "-o "+imageBuildPath, 1))
		c.Dir = root
		// The build stage's environment: ARG VERSION, and no GOFLAGS the
		// Dockerfile does not set.
		c.Env = append(withoutEnv(os.Environ(), "GOFLAGS", "CGO_ENABLED"), "VERSION="+imageTestVersion)
		start := time.Now()
		out, err := c.CombinedOutput()
		imageBuildLog = fmt.Sprintf("%s (%s)", out, time.Since(start).Round(time.Second))
		imageBuildErr = err
	})
	if imageBuildErr != nil {
		t.Fatalf("building as the Dockerfile does: %v\n%s", imageBuildErr, imageBuildLog)
	}
	t.Logf("built as the Dockerfile does: %s", imageBuildLog)
	return imageBuildPath
}

func withoutEnv(env []string, names ...string) []string {
	var out []string
	for _, e := range env {
		keep := true
		for _, n := range names {
			if strings.HasPrefix(e, n+"=") {
				keep = false
			}
		}
		if keep {
			out = append(out, e)
		}
	}
	return out
}

// TestImageBuild builds the binary as the image does and runs `version`
// and `policy validate` with it; and checks the image's user, spool volume
// and command agree with the config defaults the quickstart relies on.
func TestImageBuild(t *testing.T) {
	d := readDockerfile(t)
	checks := []struct {
		what string
		re   string
	}{
		{"runs as uid 65532", `^USER 65532:65532$`},
		{"declares the default spool and bundle cache VOLUMEs", `^VOLUME \["` + regexp.QuoteMeta(audit.DefaultSpoolDir) + `", "` + regexp.QuoteMeta(config.DefaultBundleCacheDir) + `"\]$`},
		{"gives the spool mount point to 65532", `^COPY --from=build --chown=65532:65532 \S+ ` + regexp.QuoteMeta(audit.DefaultSpoolDir) + `$`},
		{"gives the bundle cache mount point to 65532", `^COPY --from=build --chown=65532:65532 \S+ ` + regexp.QuoteMeta(config.DefaultBundleCacheDir) + `$`},
		{"serves the mounted config", `^CMD \["serve", "--config", "/etc/warden/warden.yaml"\]$`},
		{"is static", `CGO_ENABLED=0`},
	}
	for _, c := range checks {
		re := regexp.MustCompile(c.re)
		n := 0
		for _, in := range d.instrs {
			if re.MatchString(in) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("the Dockerfile %s: want one instruction matching %s, found %d", c.what, c.re, n)
		}
	}
	// The quickstart in the header: host networking (the example binds
	// loopback), the config where CMD reads it, the stamped version.
	for _, want := range []string{"--network host", `deploy/examples/warden.yaml:/etc/warden/warden.yaml:ro`, `--build-arg VERSION=`} {
		if !strings.Contains(d.text, want) {
			t.Errorf("the Dockerfile's quickstart lacks %q", want)
		}
	}
	if strings.Contains(d.text, "-p 8480") {
		t.Error("the Dockerfile's quickstart publishes 8480, which the loopback-bound example listener never answers")
	}

	bin := buildImageBinary(t)
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "warden "+imageTestVersion+" ") {
		t.Errorf("version: %q %v, want the stamped %s", out, err, imageTestVersion)
	}
	out, err = exec.Command(bin, "policy", "validate", "--config", "../../deploy/examples/warden.yaml").CombinedOutput()
	if err != nil {
		t.Errorf("policy validate of the example with the image's binary: %v\n%s", err, out)
	}
	// A broken config fails validation with the image's binary too.
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("version: 1\nlisten: {endpoint: 0.0.0.0:8480}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "policy", "validate", "--config", bad).CombinedOutput(); err == nil || !strings.Contains(string(out), "listen.endpoint") {
		t.Errorf("policy validate of a bad config: %v\n%s", err, out)
	}
}

// quickstartScript runs in new network and mount namespaces (unshare, as
// root) what `docker run --network host` of the image does: the example
// config at /etc/warden/warden.yaml, the default spool directory as the
// image's VOLUME gives it (owned by 65532, or root-owned when spoolOwner
// says so: the ECS volume of issue 17), Warden as uid 65532 with the
// image's CMD; then the host side: /healthz on the example's admin address,
// the endpoint's address answering, the spool's files, and SIGTERM.
const quickstartScript = `set -eu
bin="$1"; config="$2"; owner="$3"
ip link set lo up
# Private copies of /var/lib and /etc, as the image has its own.
mount -t tmpfs tmpfs /var/lib
mkdir -p /var/lib/warden/audit
chown "$owner" /var/lib/warden/audit
chmod 0700 /var/lib/warden/audit
# /etc as distroless has it (the CA roots), plus the mounted config.
etc="$(mktemp -d)"
trap 'rm -rf "$etc"' EXIT
chmod 0755 "$etc"
cp -a /etc/ssl "$etc/ssl"
mkdir -p "$etc/warden"
cp "$config" "$etc/warden/warden.yaml"
chmod 0644 "$etc/warden/warden.yaml"
mount --bind "$etc" /etc
# A container's environment: nothing of the test's, the -e variables of the quickstart.
env -i PATH=/nonexistent HOME=/home/nonroot AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=AKIAQUICKSTART000001 \
  AWS_SECRET_ACCESS_KEY=quickstart AWS_EC2_METADATA_DISABLED=true \
  "$(command -v setpriv)" --reuid 65532 --regid 65532 --clear-groups -- "$bin" serve --config /etc/warden/warden.yaml &
pid=$!
ok=0
for i in $(seq 1 300); do
  if "$bin" healthcheck --url http://127.0.0.1:9480/healthz >/dev/null 2>&1; then ok=1; break; fi
  if ! kill -0 "$pid" 2>/dev/null; then break; fi
  sleep 0.1
done
echo "QUICKSTART healthz=$ok"
if [ "$ok" = 1 ]; then
  # The endpoint answers on the example's address (an unsigned GET gets an AWS-shaped refusal).
  echo "QUICKSTART endpoint $("$bin" healthcheck --url http://127.0.0.1:8480/ 2>&1)"
  for f in /var/lib/warden/audit/*; do echo "QUICKSTART spool $(stat -c '%u:%g' "$f") $(basename "$f")"; done
  kill -TERM "$pid"
fi
set +e
wait "$pid"
echo "QUICKSTART exit=$?"
`

// TestImageQuickstart runs the Dockerfile's quickstart as the image runs
// it (see quickstartScript), and the same with the spool volume root-owned:
// Warden must then stop at start naming its uid and the fix.
func TestImageQuickstart(t *testing.T) {
	if os.Getuid() != 0 {
		testenv.Missing(t, "TestImageQuickstart needs root (network and mount namespaces, setpriv)")
	}
	for _, tool := range []string{"unshare", "setpriv", "ip", "mount", "stat"} {
		if _, err := exec.LookPath(tool); err != nil {
			testenv.Missing(t, "TestImageQuickstart needs %s on PATH", tool)
		}
	}
	bin := buildImageBinary(t)
	// The binary must be reachable by uid 65532 inside the namespace.
	if err := os.Chmod(filepath.Dir(bin), 0o755); err != nil {
		t.Fatal(err)
	}
	config, _ := filepath.Abs("../../deploy/examples/warden.yaml")
	run := func(t *testing.T, owner string) string {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
		defer cancel()
		c := exec.CommandContext(ctx, "unshare", "--net", "--mount", "--propagation", "private", "--fork", "--", "sh", "-c", quickstartScript, "sh", bin, config, owner)
		out, _ := c.CombinedOutput()
		return string(out)
	}
	t.Run("as written", func(t *testing.T) {
		out := run(t, "65532:65532")
		for _, want := range []string{
			"QUICKSTART healthz=1",
			"QUICKSTART endpoint warden healthcheck: http://127.0.0.1:8480/: HTTP 4", // an AWS-shaped refusal, not "connection refused"
			"QUICKSTART spool 65532:65532 instance",
			"QUICKSTART spool 65532:65532 signing.key",
			"QUICKSTART exit=0",
			`"msg":"endpoint listening","addr":"127.0.0.1:8480"`,
			`"msg":"audit shutdown: every sink has every line"`,
		} {
			if !strings.Contains(out, want) {
				t.Errorf("quickstart output lacks %q:\n%s", want, out)
			}
		}
		if regexp.MustCompile(`QUICKSTART spool (\d+):`).FindAllStringSubmatch(out, -1) == nil {
			t.Errorf("no spool files:\n%s", out)
		}
	})
	t.Run("root-owned spool volume", func(t *testing.T) {
		out := run(t, "0:0")
		for _, want := range []string{
			"QUICKSTART healthz=0",
			"QUICKSTART exit=1",
			"audit.spool.dir /var/lib/warden/audit is not writable by Warden's user (uid 65532, gid 65532)",
			"/var/lib/warden/audit is owned by uid 0 gid 0",
			"Fix: give uid 65532 a writable directory",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
	})
}
