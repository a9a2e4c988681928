package audit

import (
	"fmt"
	"maps"
	"slices"
	"time"
)

// Config says where audit records go and how they get there: an
// on-disk spool on the hot path, sinks fed from it, a hash chain with
// signed checkpoints, and the price table cost estimates come from.
type Config struct {
	// Instance names this Warden in records and its hash chain; default:
	// the one persisted in the spool directory, else the host name plus a
	// random suffix (then persisted).
	Instance   string                 `yaml:"instance"`
	Spool      SpoolConfig            `yaml:"spool"`
	Batch      BatchConfig            `yaml:"batch"`
	Checkpoint CheckpointConfig       `yaml:"checkpoint"`
	Sinks      []SinkConfig           `yaml:"sinks"`
	Prices     map[string]PriceConfig `yaml:"prices"`
	// Capture, off unless set, keeps the raw request and response bodies
	// of the named apps' calls, in a separate chain delivered to its own
	// sinks: audit records never hold them.
	Capture *CaptureConfig `yaml:"capture"`
	// DenialWindow folds repeated denials of one client for one reason
	// within it into one record with a count; unset: 1s; 0s: every denial
	// gets its own record.
	DenialWindow *time.Duration `yaml:"denial_window"`
	// EndUser records the end-user identifier an OpenAI-compatible or
	// Anthropic Messages request states (safety_identifier or user;
	// metadata.user_id) in the record's end_user: EndUserOff (default),
	// EndUserSHA256 or EndUserRaw.
	EndUser string `yaml:"end_user"`
}

// audit.end_user modes.
const (
	EndUserOff    = "off"
	EndUserSHA256 = "sha256"
	EndUserRaw    = "raw"
)

// CaptureConfig names the apps whose payloads are captured, where the
// capture lines go, and how much of each body is kept.
type CaptureConfig struct {
	Apps     []string     `yaml:"apps"`
	Sinks    []SinkConfig `yaml:"sinks"`
	MaxBytes int64        `yaml:"max_bytes"`
}

// DefaultCaptureMaxBytes bounds each captured body.
const DefaultCaptureMaxBytes = 1 << 20

// Spool durability and overflow modes.
const (
	DurabilityProcess = "process" // appended to the page cache: survives a process crash
	DurabilityFsync   = "fsync"   // group-committed fsync: survives a node crash
	OnFullDeny        = "deny"
	OnFullDrop        = "drop"
	// SpoolNone runs without a spool: records go to the sinks from memory
	// and a crash loses what was not yet written. For tests and demos.
	SpoolNone = "none"
)

// Spool defaults.
const (
	DefaultSpoolDir          = "/var/lib/warden/audit"
	DefaultSpoolMaxBytes     = 1 << 30
	DefaultSpoolSegmentBytes = 16 << 20
)

// SpoolConfig is the on-disk spool every record passes through.
type SpoolConfig struct {
	// Dir holds segments, sink cursors, the instance name and the chain's
	// signing key; "none" disables the spool.
	Dir          string `yaml:"dir"`
	Durability   string `yaml:"durability"`
	MaxBytes     int64  `yaml:"max_bytes"`
	SegmentBytes int64  `yaml:"segment_bytes"`
	OnFull       string `yaml:"on_full"`
	// Share bounds what one caller group's new calls may hold of the spool
	// before every sink has their lines, so that callers no app selects
	// (a flood of denials) or one app cannot leave the others no room.
	Share ShareConfig `yaml:"share"`
}

// ShareConfig holds fractions of spool.max_bytes: Unidentified for the
// calls no app selected, PerApp for each app. 1 lifts the bound.
type ShareConfig struct {
	Unidentified float64 `yaml:"unidentified"`
	PerApp       float64 `yaml:"per_app"`
}

// Share and denial aggregation defaults.
const (
	DefaultShareUnidentified = 0.1
	DefaultSharePerApp       = 0.5
	DefaultDenialWindow      = time.Second
	maxDenialWindow          = time.Minute
)

// BatchConfig bounds a sink batch by records and by the time the oldest
// record waits; failed batches are retried with exponential backoff up to
// MaxBackoff, the records staying in the spool meanwhile.
type BatchConfig struct {
	MaxRecords int           `yaml:"max_records"`
	MaxWait    time.Duration `yaml:"max_wait"`
	MaxBackoff time.Duration `yaml:"max_backoff"`
}

// CheckpointConfig says how often the chain head is signed: every Every
// records or Interval, whichever comes first (and at start and shutdown).
type CheckpointConfig struct {
	Every    int           `yaml:"every"`
	Interval time.Duration `yaml:"interval"`
}

// SinkConfig is a one-key union naming a sink.
type SinkConfig struct {
	Stdout     *struct{}             `yaml:"stdout"`
	File       *FileSinkConfig       `yaml:"file"`
	S3         *S3SinkConfig         `yaml:"s3"`
	CloudWatch *CloudWatchSinkConfig `yaml:"cloudwatch"`
	HTTP       *HTTPSinkConfig       `yaml:"http"`
}

// Kind is the sink's kind, also the name of its spool cursor unless two
// sinks share a kind (then kind-index).
func (s SinkConfig) Kind() string {
	switch {
	case s.Stdout != nil:
		return "stdout"
	case s.File != nil:
		return "file"
	case s.S3 != nil:
		return "s3"
	case s.CloudWatch != nil:
		return "cloudwatch"
	case s.HTTP != nil:
		return "http"
	}
	return ""
}

// FileSinkConfig appends JSON lines to a file, rotating it at MaxBytes
// (0: never) and keeping MaxFiles rotated files (0: all).
type FileSinkConfig struct {
	Path     string `yaml:"path"`
	MaxBytes int64  `yaml:"max_bytes"`
	MaxFiles int    `yaml:"max_files"`
}

// S3SinkConfig writes gzip JSON-lines objects under
// prefix/dt=YYYY-MM-DD/hour=HH/. Endpoint and PathStyle serve S3-compatible
// stores and VPC endpoints; credentials come from the default chain.
type S3SinkConfig struct {
	Bucket    string `yaml:"bucket"`
	Prefix    string `yaml:"prefix"`
	Region    string `yaml:"region"`
	Endpoint  string `yaml:"endpoint"`
	PathStyle bool   `yaml:"path_style"`
}

// CloudWatchSinkConfig sends records as log events with PutLogEvents.
type CloudWatchSinkConfig struct {
	LogGroup  string `yaml:"log_group"`
	LogStream string `yaml:"log_stream"` // default: the instance name
	Region    string `yaml:"region"`
	Endpoint  string `yaml:"endpoint"`
}

// HTTPSinkConfig POSTs batches as JSON lines (or a JSON array) to URL with
// an auth header whose value is read from the environment variable AuthEnv
// (never from the config file).
type HTTPSinkConfig struct {
	URL        string        `yaml:"url"`
	Format     string        `yaml:"format"` // jsonl (default) | json | splunk_hec
	AuthHeader string        `yaml:"auth_header"`
	AuthEnv    string        `yaml:"auth_env"`
	Timeout    time.Duration `yaml:"timeout"`
}

// PriceConfig is a model's price in USD per million tokens.
type PriceConfig struct {
	Input      float64 `yaml:"input_per_mtok"`
	Output     float64 `yaml:"output_per_mtok"`
	CacheRead  float64 `yaml:"cache_read_per_mtok"`
	CacheWrite float64 `yaml:"cache_write_per_mtok"`
}

// ApplyDefaults fills what the audit section may leave out.
func (a *Config) ApplyDefaults() {
	if len(a.Sinks) == 0 {
		a.Sinks = []SinkConfig{{Stdout: &struct{}{}}}
	}
	s := &a.Spool
	if s.Dir == "" {
		s.Dir = DefaultSpoolDir
	}
	if s.Durability == "" {
		s.Durability = DurabilityProcess
	}
	if s.MaxBytes == 0 {
		s.MaxBytes = DefaultSpoolMaxBytes
	}
	if s.SegmentBytes == 0 {
		s.SegmentBytes = DefaultSpoolSegmentBytes
	}
	if s.OnFull == "" {
		s.OnFull = OnFullDeny
	}
	if s.Share.Unidentified == 0 {
		s.Share.Unidentified = DefaultShareUnidentified
	}
	if s.Share.PerApp == 0 {
		s.Share.PerApp = DefaultSharePerApp
	}
	if a.DenialWindow == nil {
		w := DefaultDenialWindow
		a.DenialWindow = &w
	}
	if a.Batch.MaxRecords == 0 {
		a.Batch.MaxRecords = 500
	}
	if a.Batch.MaxWait == 0 {
		a.Batch.MaxWait = time.Second
	}
	if a.Batch.MaxBackoff == 0 {
		a.Batch.MaxBackoff = 30 * time.Second
	}
	if a.Checkpoint.Every == 0 {
		a.Checkpoint.Every = 1000
	}
	if a.Checkpoint.Interval == 0 {
		a.Checkpoint.Interval = 10 * time.Second
	}
	if a.Capture != nil && a.Capture.MaxBytes == 0 {
		a.Capture.MaxBytes = DefaultCaptureMaxBytes
	}
}

// Validate checks the audit section; errors name config keys.
func (a *Config) Validate() []error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	s := a.Spool
	if s.Durability != DurabilityProcess && s.Durability != DurabilityFsync {
		add("audit.spool.durability %q: want process or fsync", s.Durability)
	}
	if s.OnFull != OnFullDeny && s.OnFull != OnFullDrop {
		add("audit.spool.on_full %q: want deny or drop", s.OnFull)
	}
	if s.SegmentBytes < 64<<10 || s.SegmentBytes > 1<<30 {
		add("audit.spool.segment_bytes %d: want 64 KiB to 1 GiB", s.SegmentBytes)
	}
	if s.MaxBytes < 3*s.SegmentBytes { // one for new calls, one being shipped, one kept for completions
		add("audit.spool.max_bytes %d: want at least three segments (3 × segment_bytes = %d)", s.MaxBytes, 3*s.SegmentBytes)
	}
	for _, sh := range []struct {
		key string
		v   float64
	}{{"unidentified", s.Share.Unidentified}, {"per_app", s.Share.PerApp}} {
		if !(sh.v > 0 && sh.v <= 1) { // NaN fails too
			add("audit.spool.share.%s %v: want a fraction of max_bytes above 0 and at most 1", sh.key, sh.v)
		}
	}
	switch a.EndUser {
	case "", EndUserOff, EndUserSHA256, EndUserRaw:
	default:
		add("audit.end_user %q: want off, sha256 or raw", a.EndUser)
	}
	if w := a.DenialWindow; w != nil && (*w < 0 || *w > maxDenialWindow) {
		add("audit.denial_window %s: want 0s (off) to %s", *w, maxDenialWindow)
	}
	if a.Batch.MaxRecords < 1 || a.Batch.MaxRecords > 10000 {
		add("audit.batch.max_records %d: want 1 to 10000", a.Batch.MaxRecords)
	}
	if a.Batch.MaxWait < 0 || a.Batch.MaxBackoff < 0 || a.Checkpoint.Interval < 0 || a.Checkpoint.Every < 0 {
		add("audit: durations and counts must not be negative")
	}
	errs = append(errs, validateSinks("audit.sinks", a.Sinks)...)
	if c := a.Capture; c != nil {
		if len(c.Apps) == 0 || len(c.Sinks) == 0 {
			add("audit.capture: name the apps to capture and the sinks their payloads go to")
		}
		if c.MaxBytes < 0 {
			add("audit.capture.max_bytes must not be negative")
		}
		errs = append(errs, validateSinks("audit.capture.sinks", c.Sinks)...)
	}
	for _, m := range slices.Sorted(maps.Keys(a.Prices)) {
		if err := checkPriceKey(m, a.Prices[m]); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// validateSinks checks a sink list at path (audit.sinks, audit.capture.sinks).
func validateSinks(path string, sinks []SinkConfig) []error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	for i, sk := range sinks {
		n := 0
		for _, set := range []bool{sk.Stdout != nil, sk.File != nil, sk.S3 != nil, sk.CloudWatch != nil, sk.HTTP != nil} {
			if set {
				n++
			}
		}
		if n != 1 {
			add("%s[%d]: name exactly one sink (stdout, file, s3, cloudwatch or http)", path, i)
			continue
		}
		switch {
		case sk.File != nil && sk.File.Path == "":
			add("%s[%d].file.path is required", path, i)
		case sk.File != nil && (sk.File.MaxBytes < 0 || sk.File.MaxFiles < 0):
			add("%s[%d].file: max_bytes and max_files must not be negative", path, i)
		case sk.S3 != nil && sk.S3.Bucket == "":
			add("%s[%d].s3.bucket is required", path, i)
		case sk.CloudWatch != nil && sk.CloudWatch.LogGroup == "":
			add("%s[%d].cloudwatch.log_group is required", path, i)
		case sk.HTTP != nil && sk.HTTP.URL == "":
			add("%s[%d].http.url is required", path, i)
		case sk.HTTP != nil && (sk.HTTP.AuthHeader == "") != (sk.HTTP.AuthEnv == ""):
			add("%s[%d].http: auth_header and auth_env go together", path, i)
		case sk.HTTP != nil && sk.HTTP.Format != "" && sk.HTTP.Format != "jsonl" && sk.HTTP.Format != "json" && sk.HTTP.Format != "splunk_hec":
			add("%s[%d].http.format %q: want jsonl, json or splunk_hec", path, i, sk.HTTP.Format)
		}
	}
	return errs
}
