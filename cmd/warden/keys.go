package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/warden-egress/warden/authz/identity"
	"github.com/warden-egress/warden/bundle"
)

const keysUsage = `usage:
  warden keys issue --app APP --ttl 30d --master-key FILE [--format env|profile|json|bearer] [--profile NAME]
      print a new Warden-issued key for APP (ttl: d, h and m units, e.g. 30d, 12h, 1d12h; at most 365d)
        env      AWS_ACCESS_KEY_ID=… / AWS_SECRET_ACCESS_KEY=… lines (shell, --env-file, kubectl --from-env-file)
        profile  an ~/.aws/credentials block (section name: --profile, default warden-APP)
        json     the AWS credential_process format (Version, AccessKeyId, SecretAccessKey, Expiration) plus App
        bearer   the key as an API key (Authorization: Bearer / x-api-key) for the OpenAI and Anthropic SDKs:
                 OPENAI_API_KEY=…, ANTHROPIC_API_KEY=… and AWS_BEARER_TOKEN_BEDROCK=… lines (one key, three names)
  warden keys genmaster --out FILE
      create a master key file (mode 0600; never overwrites)
  warden keys inspect ACCESS_KEY_ID
      print the app and expiry an access key id names (not whether it is genuine; no secret)
  warden keys bundle-key --id ID --out DIR
      create an Ed25519 policy-bundle signing key: DIR/ID.key (mode 0600; never overwrites) and
      DIR/ID.pub (base64, for bundle.trusted_keys); prints the public key
`

// MaxKeyTTL bounds warden keys issue --ttl.
const maxKeyTTL = 365 * 24 * time.Hour

func cmdKeys(_ context.Context, args []string, stdout, stderr io.Writer) error {
	return keysCommand{now: time.Now, rand: rand.Reader}.run(args, stdout, stderr)
}

// keysCommand carries the clock and randomness so tests can fix them.
type keysCommand struct {
	now  func() time.Time
	rand io.Reader
}

func (k keysCommand) run(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("a subcommand is required\n" + keysUsage)
	}
	switch args[0] {
	case "issue":
		return k.issue(args[1:], stdout, stderr)
	case "genmaster":
		return k.genmaster(args[1:], stdout, stderr)
	case "inspect":
		return k.inspect(args[1:], stdout, stderr)
	case "bundle-key":
		return k.bundleKey(args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, keysUsage)
		return nil
	}
	return usageErrorf("unknown subcommand %q\n%s", args[0], keysUsage)
}

func (k keysCommand) issue(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("keys issue", flag.ContinueOnError)
	fs.SetOutput(stderr)
	app := fs.String("app", "", "app name the key identifies (the warden.key_app tag)")
	ttlText := fs.String("ttl", "", "how long the key is valid: d, h and m units, e.g. 30d (at most 365d)")
	masterFile := fs.String("master-key", "", "master key file (or the directory of a Kubernetes Secret volume)")
	format := fs.String("format", "env", "output: env, profile, json or bearer")
	profile := fs.String("profile", "", "profile name for --format profile (default warden-APP)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *app == "" || *ttlText == "" || *masterFile == "" {
		return errors.New("--app, --ttl and --master-key are required")
	}
	if err := identity.ValidateKeyApp(*app); err != nil {
		return fmt.Errorf("--app: %w", err)
	}
	ttl, err := parseTTL(*ttlText)
	if err != nil {
		return fmt.Errorf("--ttl: %w", err)
	}
	switch *format {
	case "env", "profile", "json", "bearer":
	default:
		return fmt.Errorf("--format: %q is not env, profile, json or bearer", *format)
	}
	if *profile != "" && *format != "profile" {
		return errors.New("--profile applies to --format profile only")
	}
	if strings.ContainsAny(*profile, "[]\r\n") {
		return fmt.Errorf("--profile: %q cannot be an ini section name", *profile)
	}
	master, err := identity.LoadMasterKey(*masterFile)
	if err != nil {
		return err
	}
	// Keys expire on whole seconds; round up so the key lives at least ttl.
	expires := k.now().Add(ttl).Add(time.Second - 1).Truncate(time.Second).UTC()
	akid, secret, err := identity.IssueKey(master, *app, expires, k.rand)
	if err != nil {
		return err
	}
	exp := expires.Format(time.RFC3339)
	switch *format {
	case "env":
		fmt.Fprintf(stdout, "# Warden key for app %s, expires %s\nAWS_ACCESS_KEY_ID=%s\nAWS_SECRET_ACCESS_KEY=%s\n", *app, exp, akid, secret)
	case "bearer":
		key := identity.BearerKeyFor(master, akid)
		fmt.Fprintf(stdout, "# Warden bearer key for app %s (key id %s), expires %s\nOPENAI_API_KEY=%s\nANTHROPIC_API_KEY=%s\nAWS_BEARER_TOKEN_BEDROCK=%s\n",
			*app, akid, exp, key, key, key)
	case "profile":
		name := *profile
		if name == "" {
			name = "warden-" + *app
		}
		fmt.Fprintf(stdout, "# Warden key for app %s, expires %s\n[%s]\naws_access_key_id = %s\naws_secret_access_key = %s\n", *app, exp, name, akid, secret)
	case "json":
		out, err := json.MarshalIndent(struct {
			Version         int
			AccessKeyID     string `json:"AccessKeyId"`
			SecretAccessKey string
			Expiration      string
			App             string
		}{1, akid, secret, exp, *app}, "", "  ")
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s\n", out)
	}
	return nil
}

func (k keysCommand) genmaster(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("keys genmaster", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "", "file to create (mode 0600; an existing file is never overwritten)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *out == "" || fs.NArg() > 0 {
		return errors.New("usage: warden keys genmaster --out FILE")
	}
	fp, err := identity.GenerateMasterKey(*out, k.rand)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote master key %s (mode 0600, fingerprint %s)\n", *out, fp)
	fmt.Fprintf(stdout, "Kubernetes: kubectl create secret generic warden-master-key --from-file=master.key=%s\n", *out)
	fmt.Fprintln(stdout, "  and mount it into Warden's container only, with defaultMode: 0400 (Secret volumes default to 0644, which Warden refuses)")
	return nil
}

func (k keysCommand) inspect(args []string, stdout, _ io.Writer) error {
	if len(args) != 1 {
		return errors.New("usage: warden keys inspect ACCESS_KEY_ID")
	}
	akid := strings.TrimSpace(args[0])
	app, expires, err := identity.ParseKeyID(akid)
	if err != nil {
		return err
	}
	now := k.now()
	state := "valid for another " + roundDuration(expires.Sub(now))
	if !now.Before(expires) {
		state = "EXPIRED " + roundDuration(now.Sub(expires)) + " ago"
	}
	fmt.Fprintf(stdout, "access key id: %s\napp:           %s\nexpires:       %s (%s)\n", akid, app, expires.Format(time.RFC3339), state)
	fmt.Fprintln(stdout, "(the id alone proves nothing: only Warden, with the master key, can tell whether a signature by it is genuine)")
	return nil
}

// parseTTL parses a positive duration written with d, h and m units
// ("30d", "12h", "1d12h", "90m"), at least a minute and at most 365 days.
func parseTTL(s string) (time.Duration, error) {
	if s == "" {
		return 0, errors.New("empty duration")
	}
	var total time.Duration
	rest := s
	for rest != "" {
		i := 0
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		if i == 0 || i == len(rest) {
			return 0, fmt.Errorf("%q: write a number followed by d, h or m (e.g. 30d, 12h, 1d12h)", s)
		}
		n, err := strconv.ParseInt(rest[:i], 10, 64)
		if err != nil || n > 1_000_000 {
			return 0, fmt.Errorf("%q: number out of range", s)
		}
		var unit time.Duration
		switch rest[i] {
		case 'd':
			unit = 24 * time.Hour
		case 'h':
			unit = time.Hour
		case 'm':
			unit = time.Minute
		default:
			return 0, fmt.Errorf("%q: unknown unit %q (use d, h or m)", s, rest[i])
		}
		total += time.Duration(n) * unit
		if total > maxKeyTTL {
			return 0, fmt.Errorf("%q is longer than the maximum of 365d; issue shorter-lived keys and reissue", s)
		}
		rest = rest[i+1:]
	}
	if total < time.Minute {
		return 0, fmt.Errorf("%q: must be at least 1m", s)
	}
	return total, nil
}

// roundDuration renders a duration in days and hours (or minutes when short).
func roundDuration(d time.Duration) string {
	if d < time.Hour {
		return d.Round(time.Second).String()
	}
	days := int64(d / (24 * time.Hour))
	hours := int64(d%(24*time.Hour)) / int64(time.Hour)
	if days == 0 {
		return fmt.Sprintf("%dh", hours)
	}
	return fmt.Sprintf("%dd%dh", days, hours)
}

func (k keysCommand) bundleKey(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("keys bundle-key", flag.ContinueOnError)
	fs.SetOutput(stderr)
	id := fs.String("id", "", "key id (named in bundles and in bundle.trusted_keys), e.g. security-2026-12")
	out := fs.String("out", "", "directory for ID.key (0600) and ID.pub")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *id == "" || *out == "" {
		return errors.New("--id and --out are required")
	}
	pub, err := bundle.GenerateKey(*out, *id, k.rand)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "bundle signing key %s: %s/%s.key (0600)\ntrusted key for Wardens:\n  - id: %s\n    public_key: %s\n", *id, *out, *id, *id, pub)
	return nil
}
