package bundle

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
)

// Store is where published bundles live, one file (object) per serial,
// named FileName: a directory the service reads, or an object-store
// prefix that the service or the Wardens themselves read. A store is only
// storage: every bundle read from it is verified before use, so whoever
// can write to it can at worst withhold bundles, never forge one.
type Store interface {
	// List names the bundle files in ascending order, each with a stamp
	// that changes when the file does.
	List(ctx context.Context) ([]StoredBundle, error)
	// Get reads one bundle file.
	Get(ctx context.Context, name string) ([]byte, error)
	// Create stores a new bundle file; ErrExists when the name is taken
	// (a published serial is never replaced).
	Create(ctx context.Context, name string, raw []byte) error
	// String names the store for logs and errors.
	String() string
}

// StoredBundle is one listed bundle file.
type StoredBundle struct {
	Name  string
	Stamp string // size and mtime, or the object's ETag
}

// ErrExists refuses a Create of a name already stored.
var ErrExists = errors.New("a bundle with this serial is already published")

// isBundleName says whether name is a FileName.
func isBundleName(name string) bool {
	digits, ok := strings.CutPrefix(name, "bundle-")
	if !ok {
		return false
	}
	digits, ok = strings.CutSuffix(digits, ".json")
	if !ok || len(digits) != 20 {
		return false
	}
	_, err := strconv.ParseUint(digits, 10, 64)
	return err == nil
}

// DirStore is a directory of bundle files.
type DirStore struct{ Dir string }

func (d DirStore) String() string { return d.Dir }

// List implements Store.
func (d DirStore) List(_ context.Context) ([]StoredBundle, error) {
	ents, err := os.ReadDir(d.Dir)
	if err != nil {
		return nil, fmt.Errorf("bundle store %s: %w", d.Dir, err)
	}
	var out []StoredBundle
	for _, e := range ents {
		if !isBundleName(e.Name()) {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue // removed since ReadDir
		}
		out = append(out, StoredBundle{Name: e.Name(), Stamp: fmt.Sprintf("%d/%d", fi.Size(), fi.ModTime().UnixNano())})
	}
	return out, nil // ReadDir sorts by name
}

// Get implements Store.
func (d DirStore) Get(_ context.Context, name string) ([]byte, error) {
	if !isBundleName(name) {
		return nil, fmt.Errorf("bundle store %s: %q is not a bundle file name", d.Dir, name)
	}
	f, err := os.Open(filepath.Join(d.Dir, name))
	if err != nil {
		return nil, fmt.Errorf("bundle store: %w", err)
	}
	defer func() { _ = f.Close() }()
	return readBounded(f, filepath.Join(d.Dir, name))
}

// Create implements Store: the file appears whole (a temporary file
// renamed over nothing), or not at all.
func (d DirStore) Create(_ context.Context, name string, raw []byte) error {
	if !isBundleName(name) {
		return fmt.Errorf("bundle store %s: %q is not a bundle file name", d.Dir, name)
	}
	dst := filepath.Join(d.Dir, name)
	if _, err := os.Lstat(dst); err == nil {
		return fmt.Errorf("%s: %w", dst, ErrExists)
	}
	f, err := os.CreateTemp(d.Dir, ".tmp-"+name+"-*")
	if err != nil {
		return fmt.Errorf("bundle store: %w", err)
	}
	tmp := f.Name()
	_, werr := f.Write(raw)
	if werr == nil {
		werr = f.Chmod(0o644)
	}
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		// A hard link fails if dst exists: two publishers racing on one
		// serial cannot overwrite each other.
		if werr = os.Link(tmp, dst); errors.Is(werr, os.ErrExist) {
			werr = ErrExists
		}
	}
	_ = os.Remove(tmp)
	if werr != nil {
		return fmt.Errorf("writing %s: %w", dst, werr)
	}
	return nil
}

func readBounded(r io.Reader, what string) ([]byte, error) {
	raw, err := io.ReadAll(io.LimitReader(r, MaxBundleBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", what, err)
	}
	if len(raw) > MaxBundleBytes {
		return nil, fmt.Errorf("%w: %s is over %d bytes", ErrMalformed, what, MaxBundleBytes)
	}
	return raw, nil
}

// S3Options name an S3 prefix of bundle files.
type S3Options struct {
	// URL is s3://BUCKET/PREFIX.
	URL    string
	Region string // default: from the environment, else us-east-1
	// Endpoint is a custom endpoint URL (a VPC endpoint, an S3-compatible
	// store): https, or http to a loopback address only (tests).
	Endpoint  string
	PathStyle bool
	// Credentials, nil: the default chain (IRSA, Pod Identity, task role).
	Credentials aws.CredentialsProvider
	Timeout     time.Duration // per request; default 30 s
}

// ParseS3URL splits s3://BUCKET/PREFIX; the prefix is returned with a
// trailing "/" unless empty.
func ParseS3URL(s string) (bucket, prefix string, err error) {
	rest, ok := strings.CutPrefix(s, "s3://")
	if !ok {
		return "", "", fmt.Errorf("%q: want s3://BUCKET/PREFIX", s)
	}
	bucket, prefix, _ = strings.Cut(rest, "/")
	if bucket == "" || strings.ContainsAny(bucket, " ?#") {
		return "", "", fmt.Errorf("%q: want s3://BUCKET/PREFIX", s)
	}
	prefix = strings.Trim(prefix, "/")
	if prefix != "" {
		prefix += "/"
	}
	return bucket, prefix, nil
}

// CheckS3Endpoint refuses a plain-http endpoint that is not loopback: bundles
// are fetched over TLS.
func CheckS3Endpoint(endpoint string) error {
	if endpoint == "" {
		return nil
	}
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" {
		return fmt.Errorf("s3 endpoint %q: not an absolute URL", endpoint)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if ip := net.ParseIP(u.Hostname()); ip != nil && ip.IsLoopback() {
			return nil
		}
		return fmt.Errorf("s3 endpoint %q: must be https (plain http only to a loopback address)", endpoint)
	}
	return fmt.Errorf("s3 endpoint %q: must be https", endpoint)
}

// S3Store is an S3 prefix of bundle files.
type S3Store struct {
	client         *s3.Client
	bucket, prefix string
	timeout        time.Duration
}

// NewS3Store opens the prefix o.URL names; it makes no call until used.
func NewS3Store(ctx context.Context, o S3Options) (*S3Store, error) {
	bucket, prefix, err := ParseS3URL(o.URL)
	if err != nil {
		return nil, fmt.Errorf("bundle store: %w", err)
	}
	if err := CheckS3Endpoint(o.Endpoint); err != nil {
		return nil, fmt.Errorf("bundle store: %w", err)
	}
	var lo []func(*awsconfig.LoadOptions) error
	if o.Region != "" {
		lo = append(lo, awsconfig.WithRegion(o.Region))
	}
	if o.Credentials != nil {
		lo = append(lo, awsconfig.WithCredentialsProvider(o.Credentials))
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, lo...)
	if err != nil {
		return nil, fmt.Errorf("bundle store %s: aws config: %w", o.URL, err)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	client := s3.NewFromConfig(cfg, func(so *s3.Options) {
		if o.Endpoint != "" {
			so.BaseEndpoint = aws.String(o.Endpoint)
		}
		so.UsePathStyle = o.PathStyle
	})
	return &S3Store{client: client, bucket: bucket, prefix: prefix, timeout: o.Timeout}, nil
}

// StaticCredentials is a fixed access key (tests, S3-compatible stores).
func StaticCredentials(accessKey, secretKey string) aws.CredentialsProvider {
	return credentials.NewStaticCredentialsProvider(accessKey, secretKey, "")
}

func (s *S3Store) String() string { return "s3://" + s.bucket + "/" + s.prefix }

// List implements Store (ListObjectsV2, every page).
func (s *S3Store) List(ctx context.Context) ([]StoredBundle, error) {
	in := &s3.ListObjectsV2Input{Bucket: aws.String(s.bucket), Prefix: aws.String(s.prefix)}
	var out []StoredBundle
	p := s3.NewListObjectsV2Paginator(s.client, in)
	for p.HasMorePages() {
		cctx, cancel := context.WithTimeout(ctx, s.timeout)
		page, err := p.NextPage(cctx)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("bundle store %s: list: %w", s, err)
		}
		for _, o := range page.Contents {
			name := strings.TrimPrefix(aws.ToString(o.Key), s.prefix)
			if !isBundleName(name) {
				continue // other objects, and deeper "directories"
			}
			out = append(out, StoredBundle{Name: name, Stamp: aws.ToString(o.ETag) + "/" + strconv.FormatInt(aws.ToInt64(o.Size), 10)})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Get implements Store.
func (s *S3Store) Get(ctx context.Context, name string) ([]byte, error) {
	cctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	o, err := s.client.GetObject(cctx, &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(s.prefix + name)})
	if err != nil {
		return nil, fmt.Errorf("bundle store %s: get %s: %w", s, name, err)
	}
	defer func() { _ = o.Body.Close() }()
	return readBounded(o.Body, s.String()+name)
}

// Create implements Store with a conditional PUT (If-None-Match: *), so a
// published serial is never replaced.
func (s *S3Store) Create(ctx context.Context, name string, raw []byte) error {
	if !isBundleName(name) {
		return fmt.Errorf("bundle store %s: %q is not a bundle file name", s, name)
	}
	cctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	_, err := s.client.PutObject(cctx, &s3.PutObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(s.prefix + name),
		Body: bytes.NewReader(raw), ContentType: aws.String("application/json"), IfNoneMatch: aws.String("*")})
	var ae smithy.APIError
	if errors.As(err, &ae) && (ae.ErrorCode() == "PreconditionFailed" || ae.ErrorCode() == "ConditionalRequestConflict") {
		return fmt.Errorf("%s%s: %w", s, name, ErrExists)
	}
	if err != nil {
		return fmt.Errorf("bundle store %s: put %s: %w", s, name, err)
	}
	return nil
}
