package audit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
)

// OpenSinks builds one audit sink per configured entry, in order. The
// HTTP sink's auth value is read from the environment variable the config
// names (secrets never sit in the config file); an unset or empty one is
// an error rather than unauthenticated delivery. On error the sinks opened
// so far are closed.
func OpenSinks(ctx context.Context, cfg Config, instance string, stdout io.Writer) ([]Sink, error) {
	var sinks []Sink
	fail := func(err error) ([]Sink, error) {
		for _, s := range sinks {
			err = errors.Join(err, s.Close())
		}
		return nil, err
	}
	for i, sc := range cfg.Sinks {
		s, err := openSink(ctx, sc, instance, stdout)
		if err != nil {
			return fail(fmt.Errorf("audit.sinks[%d] (%s): %w", i, sc.Kind(), err))
		}
		sinks = append(sinks, s)
	}
	return sinks, nil
}

func openSink(ctx context.Context, sc SinkConfig, instance string, stdout io.Writer) (Sink, error) {
	switch {
	case sc.Stdout != nil:
		return NewStdoutSink(stdout), nil
	case sc.File != nil:
		return NewFileSink(FileSinkOptions{Path: sc.File.Path, MaxBytes: sc.File.MaxBytes, MaxFiles: sc.File.MaxFiles})
	case sc.S3 != nil:
		c := sc.S3
		return NewS3Sink(ctx, S3SinkOptions{
			Bucket: c.Bucket, Prefix: c.Prefix, Region: c.Region, Endpoint: c.Endpoint, PathStyle: c.PathStyle,
			Instance: instance,
		})
	case sc.CloudWatch != nil:
		c := sc.CloudWatch
		stream := c.LogStream
		if stream == "" {
			stream = instance
		}
		return NewCloudWatchSink(ctx, CloudWatchSinkOptions{
			LogGroup: c.LogGroup, LogStream: stream, Region: c.Region, Endpoint: c.Endpoint,
		})
	case sc.HTTP != nil:
		c := sc.HTTP
		var value string
		if c.AuthEnv != "" {
			value = os.Getenv(c.AuthEnv)
			if value == "" {
				return nil, fmt.Errorf("auth_env %s is not set or empty: it must hold the %s header value for %s", c.AuthEnv, c.AuthHeader, c.URL)
			}
		}
		return NewHTTPSink(HTTPSinkOptions{
			URL: c.URL, Format: c.Format, AuthHeader: c.AuthHeader, AuthValue: value, Timeout: c.Timeout,
		})
	}
	return nil, errors.New("no sink named")
}
