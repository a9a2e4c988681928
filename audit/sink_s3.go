package audit

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// S3SinkOptions configure NewS3Sink.
type S3SinkOptions struct {
	Bucket string
	Prefix string // key prefix, e.g. "bedrock/"; used as given
	Region string // default: from the environment, else us-east-1
	// Endpoint is a custom endpoint URL: an S3-compatible store (MinIO) or
	// a VPC interface endpoint; PathStyle puts the bucket in the path.
	Endpoint  string
	PathStyle bool
	// Instance names this Warden in object keys (default "warden"), so
	// instances sharing a bucket never write the same key.
	Instance string
	// AccessKey and SecretKey are static credentials (tests); empty: the
	// default chain (environment, shared config, IRSA, instance role).
	AccessKey, SecretKey string
	Timeout              time.Duration // per object; default 30 s
}

// NewS3Sink returns a sink that writes each batch as gzip JSON-lines
// objects, one per UTC hour the batch's records fall in, at
//
//	<prefix>dt=YYYY-MM-DD/hour=HH/<instance>-<first record ID>-<first record unix nanos>.jsonl.gz
//
// (Hive-style partitions, so Athena and Glue prune by date and hour). The
// key depends only on the partition's first record, so a retried batch
// overwrites its earlier attempt instead of adding a copy; a batch replayed
// after a crash may start elsewhere and duplicate records, which readers
// drop by ID. It makes no network call until the first Write.
func NewS3Sink(ctx context.Context, opts S3SinkOptions) (Sink, error) {
	if opts.Bucket == "" {
		return nil, errors.New("audit s3 sink: no bucket")
	}
	if opts.Instance == "" {
		opts.Instance = "warden"
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	cfg, err := awsConfig(ctx, opts.Region, opts.AccessKey, opts.SecretKey)
	if err != nil {
		return nil, fmt.Errorf("audit s3 sink %s: %w", opts.Bucket, err)
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		if opts.Endpoint != "" {
			o.BaseEndpoint = aws.String(opts.Endpoint)
		}
		o.UsePathStyle = opts.PathStyle
	})
	return &s3Sink{o: opts, client: client, instance: keySafe(opts.Instance)}, nil
}

// awsConfig loads the default AWS configuration with a region fallback and
// optional static credentials, shared by the S3 and CloudWatch sinks.
func awsConfig(ctx context.Context, region, accessKey, secretKey string) (aws.Config, error) {
	var lo []func(*config.LoadOptions) error
	if region != "" {
		lo = append(lo, config.WithRegion(region))
	}
	if accessKey != "" || secretKey != "" {
		lo = append(lo, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(accessKey, secretKey, "")))
	}
	cfg, err := config.LoadDefaultConfig(ctx, lo...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("aws config: %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	return cfg, nil
}

type s3Sink struct {
	o        S3SinkOptions
	client   *s3.Client
	instance string
	mu       sync.Mutex
	buf      bytes.Buffer
	zw       *gzip.Writer
}

func (s *s3Sink) Name() string { return "s3" }

func (s *s3Sink) Write(ctx context.Context, batch []Entry) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	// Records arrive in spool order, which is nearly time order; group by
	// hour keeping that order within each object.
	type part struct {
		hour    time.Time
		entries []Entry
	}
	var parts []*part
	idx := map[int64]*part{} // by Unix hour: time.Time keys compare locations too
	for _, e := range batch {
		h := e.Time.UTC().Truncate(time.Hour)
		p := idx[h.Unix()]
		if p == nil {
			p = &part{hour: h}
			idx[h.Unix()] = p
			parts = append(parts, p)
		}
		p.entries = append(p.entries, e)
	}
	for _, p := range parts {
		if err := s.put(ctx, p.hour, p.entries); err != nil {
			return err
		}
	}
	return nil
}

// ObjectKey is the key NewS3Sink writes a partition under: prefix, the
// hour of t, instance and the partition's first record.
func ObjectKey(prefix, instance string, hour time.Time, first Entry) string {
	hour = hour.UTC()
	return prefix + "dt=" + hour.Format("2006-01-02") + "/hour=" + hour.Format("15") + "/" +
		keySafe(instance) + "-" + keySafe(first.ID) + "-" + strconv.FormatInt(first.Time.UnixNano(), 10) + ".jsonl.gz"
}

func (s *s3Sink) put(ctx context.Context, hour time.Time, entries []Entry) error {
	s.buf.Reset()
	if s.zw == nil {
		s.zw = gzip.NewWriter(&s.buf)
	} else {
		s.zw.Reset(&s.buf)
	}
	var nl = []byte{'\n'}
	for _, e := range entries {
		_, _ = s.zw.Write(e.Line) // a bytes.Buffer does not fail
		_, _ = s.zw.Write(nl)
	}
	if err := s.zw.Close(); err != nil {
		return fmt.Errorf("audit s3 sink: gzip: %w", err)
	}
	key := ObjectKey(s.o.Prefix, s.instance, hour, entries[0])
	ctx, cancel := context.WithTimeout(ctx, s.o.Timeout)
	defer cancel()
	_, err := s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:        aws.String(s.o.Bucket),
		Key:           aws.String(key),
		Body:          bytes.NewReader(s.buf.Bytes()),
		ContentLength: aws.Int64(int64(s.buf.Len())),
		ContentType:   aws.String("application/x-ndjson"),
	})
	if err != nil {
		return fmt.Errorf("audit s3 sink: put s3://%s/%s (%d records): %w", s.o.Bucket, key, len(entries), err)
	}
	return nil
}

func (s *s3Sink) Close() error { return nil }

// keySafe keeps object keys to characters every S3-compatible store and
// shell handle without escaping.
func keySafe(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			return r
		}
		return '_'
	}, s)
}
