package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/warden-egress/warden/bundle"
	"github.com/warden-egress/warden/config"
	"github.com/warden-egress/warden/proxy"
)

const (
	policySignUsage = `  warden policy sign --policy FILE --key FILE --key-id ID [--key FILE --key-id ID]… --out FILE
        [--serial N] [--expires 720h] [--fleet PATTERN]… [--namespace PATTERN]…
        sign a policy file (apps, deny, mode, guards) into a bundle for the Wardens of the scope
        (--fleet/--namespace patterns, "*" for all; at least one); --serial defaults to the Unix time;
        the policy is validated first (pass --config to validate it against a Warden's config)
`
	policyVerifyUsage = `  warden policy verify --bundle FILE --trust ID=BASE64|@FILE.pub … [--fleet F --namespace NS]
        check a bundle's signatures, envelope and expiry (and scope, with --fleet/--namespace); print it
`
	policyPublishUsage = `  warden policy publish --bundle FILE --to DIR|https://SERVICE|s3://BUCKET/PREFIX [--ca-file FILE]
        [--trust ID=BASE64|@FILE.pub …] [--s3-endpoint URL --s3-region R --s3-path-style]
        put a signed bundle where Wardens (or the bundle service) read it: a directory, the service's
        PUT /v1/bundles, or an S3 prefix (AWS default credentials); a published serial is never replaced
`
	bundleUsage = `usage:
  warden bundle serve --dir DIR|s3://BUCKET/PREFIX --trust ID=BASE64|@FILE.pub … --tls-cert FILE --tls-key FILE
        [--listen :8443] [--s3-endpoint URL --s3-region R --s3-path-style]
        serve the newest signed bundle for each Warden's scope over TLS (ETag, long-poll) from a directory
        or an S3 prefix, and accept PUT /v1/bundles of bundles signed by a trusted key
`
)

// multiFlag collects a repeated string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// parseTrustFlags reads --trust ID=BASE64 or ID=@FILE.pub.
func parseTrustFlags(vals []string) (bundle.Trust, error) {
	keys := map[string]string{}
	for _, v := range vals {
		id, key, ok := strings.Cut(v, "=")
		if !ok {
			return nil, fmt.Errorf("--trust %q: want ID=BASE64 or ID=@FILE.pub", v)
		}
		if f, isFile := strings.CutPrefix(key, "@"); isFile {
			b, err := os.ReadFile(f)
			if err != nil {
				return nil, fmt.Errorf("--trust %s: %w", id, err)
			}
			key = string(b)
		}
		if _, dup := keys[id]; dup {
			return nil, fmt.Errorf("--trust: key id %q given twice", id)
		}
		keys[id] = strings.TrimSpace(key)
	}
	if len(keys) == 0 {
		return nil, errors.New("--trust is required (the public keys bundles may be signed with)")
	}
	return bundle.ParseTrust(keys)
}

func cmdPolicySign(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("policy sign", flag.ContinueOnError)
	fs.SetOutput(stderr)
	pol := fs.String("policy", "", "policy file (YAML: apps, deny, mode, guards)")
	base := fs.String("config", "", "a Warden config to validate the policy against (default: a minimal one)")
	out := fs.String("out", "", "bundle file to write")
	serial := fs.Uint64("serial", 0, "bundle serial (default: the current Unix time); must be above every published one")
	expires := fs.Duration("expires", 30*24*time.Hour, "how long the bundle is valid")
	var keys, ids, fleets, nss multiFlag
	fs.Var(&keys, "key", "signing key file (PEM, mode 0600; repeat with --key-id to sign with several keys during a rotation)")
	fs.Var(&ids, "key-id", "the id of each --key, in order")
	fs.Var(&fleets, "fleet", "fleet pattern the bundle targets (repeatable; \"*\": every fleet)")
	fs.Var(&nss, "namespace", "namespace pattern the bundle targets (repeatable)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *pol == "" || *out == "" || len(keys) == 0 {
		return errors.New("--policy, --key, --key-id and --out are required")
	}
	if len(keys) != len(ids) {
		return fmt.Errorf("%d --key but %d --key-id: give one id per key", len(keys), len(ids))
	}
	data, err := os.ReadFile(*pol)
	if err != nil {
		return fmt.Errorf("policy: %w", err)
	}
	if err := validateBundlePolicy(*pol, data, *base); err != nil {
		return err
	}
	var signers []bundle.Signer
	for i, k := range keys {
		priv, err := bundle.LoadPrivateKey(k)
		if err != nil {
			return err
		}
		signers = append(signers, bundle.Signer{KeyID: ids[i], Key: priv})
	}
	now := time.Now()
	if *serial == 0 {
		*serial = uint64(now.Unix())
	}
	raw, err := bundle.Sign(bundle.Envelope{Serial: *serial, IssuedAt: now, ExpiresAt: now.Add(*expires),
		Scope: bundle.Scope{Fleets: fleets, Namespaces: nss}, Policy: string(data)}, signers...)
	if err != nil {
		return err
	}
	if err := bundle.WriteFileAtomic(*out, raw, 0o644); err != nil {
		return err
	}
	_, env, _, _ := bundle.Parse(raw)
	fmt.Fprintf(stdout, "signed bundle %d (policy hash %s) for %s, expires %s, keys %s: %s\n", env.Serial,
		bundlePolicyHash(data), env.Scope, env.ExpiresAt.Format(time.RFC3339), ids.String(), *out)
	return nil
}

// minimalBase is the config a policy is validated against when sign gets
// no --config: what every Warden has, nothing that would hide a mistake.
const minimalBase = "version: 1\nupstream: {region: us-east-1}\nidentity: {sources: [static], static: {k8s.namespace: x}}\n"

func validateBundlePolicy(name string, data []byte, basePath string) error {
	_, err := bundlePolicyConfig(name, data, basePath)
	return err
}

// bundlePolicyConfig is the config a Warden would run with the policy file
// name (data) from a bundle: basePath's other keys (or minimalBase's) and
// the file's apps, deny, mode and guards, validated as a reload validates.
func bundlePolicyConfig(name string, data []byte, basePath string) (*config.Config, error) {
	baseData := []byte(minimalBase)
	if basePath != "" {
		b, err := os.ReadFile(basePath)
		if err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		baseData = b
	}
	base, err := config.ParseConfig(baseData)
	if err != nil {
		return nil, errors.New(strings.Join(config.Diagnostics(basePath, baseData, err), "\n"))
	}
	base.Apps, base.Deny, base.Guards, base.Mode, base.Bundle = nil, nil, nil, "", nil
	cfg, err := config.WithPolicy(base, data)
	if err != nil {
		return nil, errors.New(strings.Join(config.Diagnostics(name, data, err), "\n"))
	}
	return cfg, nil
}

// bundlePolicyHash is the hash the audit records will carry for a policy.
func bundlePolicyHash(data []byte) string {
	base, err := config.ParseConfig([]byte(minimalBase))
	if err != nil {
		return "?"
	}
	cfg, err := config.WithPolicy(base, data)
	if err != nil {
		return "?"
	}
	return config.PolicyHash(cfg)
}

func cmdPolicyVerify(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("policy verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("bundle", "", "bundle file")
	fleet := fs.String("fleet", "", "check the scope for this fleet")
	ns := fs.String("namespace", "", "check the scope for this namespace")
	var trust multiFlag
	fs.Var(&trust, "trust", "trusted public key, ID=BASE64 or ID=@FILE.pub (repeatable)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *path == "" {
		return errors.New("--bundle is required")
	}
	t, err := parseTrustFlags(trust)
	if err != nil {
		return err
	}
	raw, err := os.ReadFile(*path)
	if err != nil {
		return err
	}
	p := bundle.Policy{Trust: t, Now: time.Now(), AnyScope: *fleet == "" && *ns == "", Target: bundle.Target{Fleet: *fleet, Namespace: *ns}}
	v, err := bundle.Verify(raw, p)
	if err != nil {
		return fmt.Errorf("%s: REFUSED (%s): %w", *path, bundle.Reason(err), err)
	}
	fmt.Fprintf(stdout, "%s: OK serial %d, signed by %s, scope %s, issued %s, expires %s, policy hash %s\n", *path, v.Serial,
		strings.Join(v.Keys, ","), v.Scope, v.IssuedAt.Format(time.RFC3339), v.ExpiresAt.Format(time.RFC3339), bundlePolicyHash([]byte(v.Policy)))
	return nil
}

func cmdPolicyPublish(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("policy publish", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("bundle", "", "signed bundle file")
	to := fs.String("to", "", "destination: a directory, https://SERVICE or s3://BUCKET/PREFIX")
	caFile := fs.String("ca-file", "", "PEM roots for an https:// destination (default: the system roots)")
	s3o := addS3SourceFlags(fs)
	var trust multiFlag
	fs.Var(&trust, "trust", "check the bundle against these keys before publishing, ID=BASE64 or ID=@FILE.pub (repeatable; a service checks it anyway)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *path == "" || *to == "" {
		return errors.New("--bundle and --to are required")
	}
	raw, err := os.ReadFile(*path)
	if err != nil {
		return err
	}
	_, env, _, err := bundle.Parse(raw)
	if err != nil {
		return fmt.Errorf("%s: %w", *path, err)
	}
	if len(trust) > 0 {
		t, err := parseTrustFlags(trust)
		if err != nil {
			return err
		}
		if _, err := bundle.Verify(raw, bundle.Policy{Trust: t, AnyScope: true, Now: time.Now()}); err != nil {
			return fmt.Errorf("%s: not published (%s): %w", *path, bundle.Reason(err), err)
		}
	}
	name := bundle.FileName(env.Serial)
	if strings.HasPrefix(*to, "https://") {
		client, err := tlsClient(*caFile)
		if err != nil {
			return err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPut, strings.TrimSuffix(*to, "/")+bundle.PathPublish, bytes.NewReader(raw))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return fmt.Errorf("publish to %s: %w", *to, err)
		}
		defer func() { _ = resp.Body.Close() }()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		if resp.StatusCode != http.StatusCreated {
			return fmt.Errorf("publish to %s: %s: %s", *to, resp.Status, strings.TrimSpace(string(body)))
		}
		name = strings.TrimSuffix(*to, "/") + bundle.PathPublish
	} else {
		store, err := openBundleStore(ctx, *to, s3o)
		if err != nil {
			return err
		}
		if err := store.Create(ctx, name, raw); err != nil {
			if errors.Is(err, bundle.ErrExists) {
				return fmt.Errorf("publish to %s: serial %d is already published; sign with a new serial: %w", store, env.Serial, err)
			}
			return fmt.Errorf("publish to %s: %w", store, err)
		}
		name = store.String() + name
		if _, isDir := store.(bundle.DirStore); isDir {
			name = filepath.Join(store.String(), bundle.FileName(env.Serial))
		}
	}
	fmt.Fprintf(stdout, "published bundle %d for %s: %s\n", env.Serial, env.Scope, name)
	return nil
}

// openBundleStore opens a directory or an s3://BUCKET/PREFIX of bundles
// (credentials from the AWS default chain).
func openBundleStore(ctx context.Context, where string, s3o s3SourceFlags) (bundle.Store, error) {
	if strings.HasPrefix(where, "s3://") {
		o := s3o.options().S3
		return bundle.NewS3Store(ctx, bundle.S3Options{URL: where, Region: o.Region, Endpoint: o.Endpoint, PathStyle: o.PathStyle})
	}
	fi, err := os.Stat(where)
	if err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("%q: not a directory, https:// or s3:// URL", where)
	}
	return bundle.DirStore{Dir: where}, nil
}

func tlsClient(caFile string) (*http.Client, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("ca file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca file %s: no PEM certificates", caFile)
		}
		tc.RootCAs = pool
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tc
	// TLS only: a redirect to http:// would resend the bundle in the clear.
	return &http.Client{Transport: tr, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if req.URL.Scheme != "https" {
			return fmt.Errorf("redirected to %s: refused, want https", req.URL.Redacted())
		}
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		return nil
	}}, nil
}

func cmdBundle(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, bundleUsage)
		return errors.New("missing subcommand")
	}
	switch args[0] {
	case "serve":
		return cmdBundleServe(ctx, args[1:], stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, bundleUsage)
		return nil
	}
	fmt.Fprint(stderr, bundleUsage)
	return usageErrorf("unknown subcommand %q", args[0])
}

func cmdBundleServe(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("bundle serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "", "directory of bundles (bundle-SERIAL.json), or s3://BUCKET/PREFIX")
	s3o := addS3SourceFlags(fs)
	listen := fs.String("listen", ":8443", "TLS listen address")
	cert := fs.String("tls-cert", "", "TLS certificate (PEM)")
	key := fs.String("tls-key", "", "TLS key (PEM)")
	scan := fs.Duration("scan-interval", time.Second, "how often to re-read --dir (one LIST of an S3 prefix)")
	var trust multiFlag
	fs.Var(&trust, "trust", "trusted public key, ID=BASE64 or ID=@FILE.pub (repeatable)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *dir == "" || *cert == "" || *key == "" {
		return errors.New("--dir, --tls-cert and --tls-key are required (the service serves TLS only)")
	}
	t, err := parseTrustFlags(trust)
	if err != nil {
		return err
	}
	log := newLogger(stderr)
	defer func() { _ = log.Sync() }()
	store, err := openBundleStore(ctx, *dir, s3o)
	if err != nil {
		return err
	}
	svc, err := bundle.NewService(ctx, store, t, log)
	if err != nil {
		return err
	}
	pair, err := tls.LoadX509KeyPair(*cert, *key)
	if err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	go svc.Run(ctx, *scan)
	hs := &http.Server{Handler: svc, ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{pair}}}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(sctx)
	}()
	log.Info("bundle service listening", zap.String("addr", ln.Addr().String()), zap.String("dir", *dir))
	if err := hs.ServeTLS(ln, "", ""); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// startBundleFollower makes srv take its policy from signed bundles (see
// proxy.Server.FollowBundles).
func startBundleFollower(ctx context.Context, srv *proxy.Server, log *zap.Logger) error {
	f, err := srv.FollowBundles(ctx)
	if err != nil {
		return err
	}
	_ = f
	log.Info("following signed policy bundles")
	return nil
}
