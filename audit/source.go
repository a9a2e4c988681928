package audit

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// MaxLineBytes bounds one audit line a source may hold (records are a few
// hundred bytes; a longer line is an error, not something to buffer).
const MaxLineBytes = 1 << 20

// SourceOptions configure ReadSourceWith.
type SourceOptions struct {
	S3 S3SourceOptions
}

// S3SourceOptions point s3:// sources at an S3-compatible store or a VPC
// endpoint (Endpoint, PathStyle) and pick the region. Credentials come from
// the default chain (environment, shared config, IRSA, instance role)
// unless AccessKey and SecretKey are set (tests against a local store).
type S3SourceOptions struct {
	Endpoint  string
	Region    string
	PathStyle bool

	AccessKey, SecretKey string
}

// ReadSource calls fn for every non-empty line of an audit source, in
// order: src is a file (plain or gzip), a directory (every *.jsonl, *.json,
// *.log and *.gz file under it, recursively, in lexical path order) or
// s3://bucket/prefix (every object under the prefix, in key order, gzip
// ones decompressed). name is the file path or object key holding the line.
// line excludes the newline and is valid only during the call. An error
// from fn stops the read and is returned as is.
func ReadSource(ctx context.Context, src string, fn func(name string, line []byte) error) error {
	return ReadSourceWith(ctx, src, SourceOptions{}, fn)
}

// ReadSourceWith is ReadSource with options for s3:// sources.
func ReadSourceWith(ctx context.Context, src string, opts SourceOptions, fn func(name string, line []byte) error) error {
	if rest, ok := strings.CutPrefix(src, "s3://"); ok {
		bucket, prefix, _ := strings.Cut(rest, "/")
		if bucket == "" {
			return fmt.Errorf("audit source %s: no bucket name", src)
		}
		return readS3(ctx, src, bucket, prefix, opts.S3, fn)
	}
	st, err := os.Stat(src)
	if err != nil {
		return fmt.Errorf("audit source: %w", err)
	}
	if !st.IsDir() {
		return readFile(ctx, src, fn)
	}
	var files []string
	err = filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() && isAuditFile(path) {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("audit source %s: %w", src, err)
	}
	if len(files) == 0 {
		return fmt.Errorf("audit source %s: no *.jsonl, *.json, *.log or *.gz files in the directory", src)
	}
	// WalkDir visits entries in lexical order, so files is in path order.
	for _, f := range files {
		if err := readFile(ctx, f, fn); err != nil {
			return err
		}
	}
	return nil
}

func isAuditFile(path string) bool {
	switch filepath.Ext(path) {
	case ".jsonl", ".json", ".log", ".gz":
		return true
	}
	return false
}

func readFile(ctx context.Context, path string, fn func(name string, line []byte) error) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("audit source: %w", err)
	}
	defer f.Close()
	return ReadLines(ctx, path, f, fn)
}

// readS3 lists the objects under prefix (ListObjectsV2 returns keys in
// ascending UTF-8 order) and reads each one; keys ending in "/" are folder
// markers and are skipped.
func readS3(ctx context.Context, src, bucket, prefix string, o S3SourceOptions, fn func(name string, line []byte) error) error {
	var loadOpts []func(*config.LoadOptions) error
	if o.Region != "" {
		loadOpts = append(loadOpts, config.WithRegion(o.Region))
	}
	if o.AccessKey != "" || o.SecretKey != "" {
		loadOpts = append(loadOpts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(o.AccessKey, o.SecretKey, "")))
	}
	cfg, err := config.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return fmt.Errorf("audit source %s: aws config: %w", src, err)
	}
	if cfg.Region == "" {
		// S3 needs a region to sign; us-east-1 also serves as the
		// conventional region of S3-compatible stores.
		cfg.Region = "us-east-1"
	}
	client := s3.NewFromConfig(cfg, func(so *s3.Options) {
		if o.Endpoint != "" {
			so.BaseEndpoint = aws.String(o.Endpoint)
		}
		so.UsePathStyle = o.PathStyle
		// Objects written by a plain PutObject carry no checksum; the
		// SDK would log that for every one of them.
		so.DisableLogOutputChecksumValidationSkipped = true
	})
	in := &s3.ListObjectsV2Input{Bucket: aws.String(bucket)}
	if prefix != "" {
		in.Prefix = aws.String(prefix)
	}
	found := 0
	for p := s3.NewListObjectsV2Paginator(client, in); p.HasMorePages(); {
		page, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("audit source %s: list objects: %w", src, err)
		}
		for _, obj := range page.Contents {
			key := aws.ToString(obj.Key)
			if strings.HasSuffix(key, "/") {
				continue
			}
			found++
			if err := readS3Object(ctx, client, bucket, key, fn); err != nil {
				return err
			}
		}
	}
	if found == 0 {
		return fmt.Errorf("audit source %s: no objects under the prefix", src)
	}
	return nil
}

func readS3Object(ctx context.Context, client *s3.Client, bucket, key string, fn func(name string, line []byte) error) error {
	out, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return fmt.Errorf("audit source s3://%s/%s: %w", bucket, key, err)
	}
	defer out.Body.Close()
	return ReadLines(ctx, key, out.Body, fn)
}

// ReadLines calls fn for every non-empty line of r, gzip-decompressed when
// r starts with the gzip magic (whatever name says); name labels errors and
// is passed to fn. Lines may end in \n or \r\n; a line longer than
// MaxLineBytes is an error.
func ReadLines(ctx context.Context, name string, r io.Reader, fn func(name string, line []byte) error) error {
	br := bufio.NewReaderSize(r, 64<<10)
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return fmt.Errorf("audit source %s: gzip: %w", name, err)
		}
		defer zr.Close()
		r = zr
	} else {
		r = br
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), MaxLineBytes+2) // room for the \r\n
	n := 0
	for sc.Scan() {
		n++
		if n%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("audit source %s: %w", name, err)
			}
		}
		line := sc.Bytes()
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		if len(line) > MaxLineBytes {
			return fmt.Errorf("audit source %s: line %d: longer than %d bytes", name, n, MaxLineBytes)
		}
		if err := fn(name, line); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return fmt.Errorf("audit source %s: line %d: longer than %d bytes", name, n+1, MaxLineBytes)
		}
		return fmt.Errorf("audit source %s: line %d: %w", name, n+1, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("audit source %s: %w", name, err)
	}
	return nil
}
