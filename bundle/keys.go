package bundle

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// GenerateKey creates an Ed25519 key pair and writes the private key as
// PKCS #8 PEM to dir/ID.key (mode 0600, never overwriting) and the public
// key, base64, to dir/ID.pub, creating dir (mode 0700) when it does not
// exist. It returns the public key's base64.
func GenerateKey(dir, id string, rnd io.Reader) (string, error) {
	if err := ValidKeyID(id); err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("bundle key: %w", err)
	}
	if rnd == nil {
		rnd = rand.Reader
	}
	pub, priv, err := ed25519.GenerateKey(rnd)
	if err != nil {
		return "", fmt.Errorf("bundle key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return "", fmt.Errorf("bundle key: %w", err)
	}
	keyPath := filepath.Join(dir, id+".key")
	f, err := os.OpenFile(keyPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("bundle key: %w", err)
	}
	if err := pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
		_ = f.Close()
		_ = os.Remove(keyPath)
		return "", fmt.Errorf("bundle key: writing %s: %w", keyPath, err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("bundle key: writing %s: %w", keyPath, err)
	}
	b64 := base64.StdEncoding.EncodeToString(pub)
	if err := os.WriteFile(filepath.Join(dir, id+".pub"), []byte(b64+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("bundle key: %w", err)
	}
	return b64, nil
}

// LoadPrivateKey reads a PKCS #8 PEM Ed25519 private key. The file must not
// be readable by group or others.
func LoadPrivateKey(path string) (ed25519.PrivateKey, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("signing key %s: mode %04o is readable by others; chmod 600 it", path, fi.Mode().Perm())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	blk, _ := pem.Decode(data)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("signing key %s: not a PEM \"PRIVATE KEY\" block", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", path, err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, errors.New("signing key " + path + ": not an Ed25519 key")
	}
	return priv, nil
}

// TrustRoots are what decides which bundles a Warden accepts: where it
// fetches them, the roots that service's certificate must chain to, the
// keys that may sign, and its place in the scopes.
type TrustRoots struct {
	URL        string
	CAFile     string
	CAPEM      string
	Keys       map[string]string // key id → base64 public key
	Fleet      string
	Namespace  string
	S3Endpoint string
}

// Pin is a digest of r ("sha256:…"). The injector puts it on an injected
// sidecar's command line (`warden serve --bundle-pin`), which the
// admission policy pins exactly, and the sidecar refuses to start when
// its configuration's trust roots do not match: whoever can edit the
// sidecar's configuration cannot change whom it trusts.
func (r TrustRoots) Pin() string {
	ids := make([]string, 0, len(r.Keys))
	for id := range r.Keys {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	h := sha256.New()
	field := func(name, v string) { fmt.Fprintf(h, "%s %d:%s\n", name, len(v), v) }
	field("url", r.URL)
	field("ca_file", r.CAFile)
	field("ca_pem", r.CAPEM)
	for _, id := range ids {
		field("key "+id, strings.TrimSpace(r.Keys[id]))
	}
	field("fleet", r.Fleet)
	field("namespace", r.Namespace)
	field("s3_endpoint", r.S3Endpoint)
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}
