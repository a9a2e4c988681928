package audit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"
)

// PutLogEvents limits (CloudWatch Logs quotas). The event size limit is
// the long-standing 256 KiB one: newer regions accept 1 MB, but emulators
// and older partitions do not, and audit records are a few hundred bytes.
const (
	cwMaxEvents     = 10000
	cwMaxBatchBytes = 1048576
	cwEventOverhead = 26
	cwMaxEventBytes = 256*1024 - cwEventOverhead
	cwMaxSpan       = 24 * time.Hour
)

// CloudWatchSinkOptions configure NewCloudWatchSink.
type CloudWatchSinkOptions struct {
	LogGroup  string // must exist: creating groups (retention, KMS) is the platform's job
	LogStream string // created on first use if missing; default "warden"
	Region    string // default: from the environment, else us-east-1
	Endpoint  string // custom endpoint URL (VPC endpoint, emulator)
	// AccessKey and SecretKey are static credentials (tests); empty: the
	// default chain.
	AccessKey, SecretKey string
	Timeout              time.Duration // per API call; default 30 s
	// OnOversize is told about each record too large for one log event
	// (see NewCloudWatchSink); nil ignores it.
	OnOversize func(id string, size int)
}

// NewCloudWatchSink returns a sink that sends records as log events with
// PutLogEvents, splitting a batch at the API's limits (10,000 events,
// 1 MiB counting 26 bytes per event, 24 hours per call) and sorting each
// call's events by time as the API requires.
//
// A record longer than one event allows cannot be sent as is: truncating
// or splitting it would break the hash chain over its bytes, and failing
// the batch would stop this sink for good (the pipeline retries the same
// batch forever). So its event carries a stub instead,
//
//	{"warden_oversize":{"id":"…","bytes":N,"sha256":"…"}}
//
// naming the record, its size and the SHA-256 of its line, so a reader of
// the log group sees which record to fetch from another sink (S3, file)
// and can check it; OnOversize is called too, for a log line or a metric.
func NewCloudWatchSink(ctx context.Context, opts CloudWatchSinkOptions) (Sink, error) {
	if opts.LogGroup == "" {
		return nil, errors.New("audit cloudwatch sink: no log group")
	}
	if opts.LogStream == "" {
		opts.LogStream = "warden"
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	cfg, err := awsConfig(ctx, opts.Region, opts.AccessKey, opts.SecretKey)
	if err != nil {
		return nil, fmt.Errorf("audit cloudwatch sink %s: %w", opts.LogGroup, err)
	}
	client := cloudwatchlogs.NewFromConfig(cfg, func(o *cloudwatchlogs.Options) {
		if opts.Endpoint != "" {
			o.BaseEndpoint = aws.String(opts.Endpoint)
		}
	})
	return &cloudWatchSink{o: opts, client: client}, nil
}

type cloudWatchSink struct {
	o       CloudWatchSinkOptions
	client  *cloudwatchlogs.Client
	mu      sync.Mutex
	created bool // the stream is known to exist
	sorted  []Entry
}

func (s *cloudWatchSink) Name() string { return "cloudwatch" }

func (s *cloudWatchSink) where() string { return s.o.LogGroup + "/" + s.o.LogStream }

func (s *cloudWatchSink) Write(ctx context.Context, batch []Entry) error {
	if len(batch) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.created {
		if err := s.createStream(ctx); err != nil {
			return err
		}
	}
	s.sorted = append(s.sorted[:0], batch...)
	// Stable: records with the same millisecond keep spool order.
	slices.SortStableFunc(s.sorted, func(a, b Entry) int { return a.Time.Compare(b.Time) })
	defer clear(s.sorted) // drop references to the caller's lines
	for _, call := range splitLogEvents(s.sorted) {
		events := make([]types.InputLogEvent, len(call))
		for i, e := range call {
			events[i] = types.InputLogEvent{Message: aws.String(s.message(e)), Timestamp: aws.Int64(e.Time.UnixMilli())}
		}
		if err := s.put(ctx, events); err != nil {
			return err
		}
	}
	return nil
}

func (s *cloudWatchSink) put(ctx context.Context, events []types.InputLogEvent) error {
	ctx, cancel := context.WithTimeout(ctx, s.o.Timeout)
	defer cancel()
	_, err := s.client.PutLogEvents(ctx, &cloudwatchlogs.PutLogEventsInput{
		LogGroupName:  aws.String(s.o.LogGroup),
		LogStreamName: aws.String(s.o.LogStream),
		LogEvents:     events,
	})
	if err != nil {
		var nf *types.ResourceNotFoundException
		if errors.As(err, &nf) {
			s.created = false // deleted under us: create it again on the retry
		}
		return fmt.Errorf("audit cloudwatch sink %s: PutLogEvents (%d events): %w", s.where(), len(events), err)
	}
	return nil
}

func (s *cloudWatchSink) createStream(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.o.Timeout)
	defer cancel()
	_, err := s.client.CreateLogStream(ctx, &cloudwatchlogs.CreateLogStreamInput{
		LogGroupName:  aws.String(s.o.LogGroup),
		LogStreamName: aws.String(s.o.LogStream),
	})
	var exists *types.ResourceAlreadyExistsException
	if err != nil && !errors.As(err, &exists) {
		return fmt.Errorf("audit cloudwatch sink %s: CreateLogStream: %w", s.where(), err)
	}
	s.created = true
	return nil
}

// message is the event text for e: its line, or the stub for a line
// longer than one event may be.
func (s *cloudWatchSink) message(e Entry) string {
	if len(e.Line) <= cwMaxEventBytes {
		return string(e.Line)
	}
	if s.o.OnOversize != nil {
		s.o.OnOversize(e.ID, len(e.Line))
	}
	return oversizeStub(e)
}

func oversizeStub(e Entry) string {
	sum := sha256.Sum256(e.Line)
	return `{"warden_oversize":{"id":` + strconv.Quote(e.ID) + `,"bytes":` + strconv.Itoa(len(e.Line)) +
		`,"sha256":"` + hex.EncodeToString(sum[:]) + `"}}`
}

// eventBytes is what an entry counts against a call's byte limit.
func eventBytes(e Entry) int {
	n := len(e.Line)
	if n > cwMaxEventBytes {
		n = len(oversizeStub(e))
	}
	return n + cwEventOverhead
}

// splitLogEvents cuts time-sorted entries into PutLogEvents calls within
// the API's count, byte and time-span limits.
func splitLogEvents(sorted []Entry) [][]Entry {
	var calls [][]Entry
	start, size := 0, 0
	for i, e := range sorted {
		n := eventBytes(e)
		if i > start && (i-start >= cwMaxEvents || size+n > cwMaxBatchBytes ||
			e.Time.UnixMilli()-sorted[start].Time.UnixMilli() >= cwMaxSpan.Milliseconds()) {
			calls = append(calls, sorted[start:i])
			start, size = i, 0
		}
		size += n
	}
	if start < len(sorted) {
		calls = append(calls, sorted[start:])
	}
	return calls
}

func (s *cloudWatchSink) Close() error { return nil }
