// Package audit holds Warden's per-call audit record and the pipeline that
// delivers it: an on-disk spool on the hot path (intent before forwarding,
// sealed record after), a hash chain with signed checkpoints, sinks fed
// from the spool (stdout, file, S3, CloudWatch Logs, HTTP), the verifier
// and the report.
package audit

import (
	"math"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
)

// SchemaVersion is bumped on any incompatible change to Record.
const SchemaVersion = 2

// A record's decision: the call was allowed; denied; or the policy (or a
// guard) would have denied it, but its app runs in dry-run, so it went on.
const (
	DecisionAllow      = "allow"
	DecisionDeny       = "deny"
	DecisionDryRunDeny = "dry-run-deny"
)

// Record is what happened on one call. It never holds prompts, responses,
// credentials or matched values.
type Record struct {
	Time time.Time
	// Instance names the Warden that handled the call (and whose hash
	// chain holds the record).
	Instance string
	// RequestID is the record's unique id (X-Warden-Request-Id).
	RequestID         string
	UpstreamRequestID string
	Client            string
	Protocol          string // client protocol, e.g. HTTP/2.0
	// Mode is how the call reached Warden: "" for endpoint mode, "proxy"
	// (HTTPS_PROXY) or "transparent" (iptables redirect); Host is the
	// intercepted host name and Signing "passthrough" when the caller's
	// own signature went upstream.
	Mode           string
	Host           string
	Signing        string
	IdentitySource string
	// IdentityStale says the identity was served from cache while the API
	// it came from was failing (bounded by the source's stale_ttl).
	IdentityStale bool
	Tags          map[string]string
	// WeakTags names the tags the workload could have claimed rather than
	// proven (sorted); the rest are strong.
	WeakTags []string
	// Path is the network path the call took, where known.
	Path Path
	App  string
	// EndUser is the end-user identifier the app's request stated (the
	// OpenAI APIs' safety_identifier or user, Messages' metadata.user_id),
	// as audit.end_user says: raw, "sha256:" and its digest, or not at
	// all. The app asserts it; App is what Warden verified.
	EndUser        string
	Operation      string
	Model          string // as requested
	ModelCanonical string

	// ModelResolved are the foundation models (canonical ids) an indirect
	// model id resolved to through the Bedrock control plane;
	// ModelResolvedStale says the answer came from the cache during a
	// control-plane outage.
	ModelResolved      []string
	ModelResolvedStale bool

	// Agent is what an agent-runtime call named (nil for runtime calls).
	Agent *AgentFields

	// PolicyHash names the policy snapshot that made the decision
	// (config.PolicyHash of its apps section); it changes on every reload
	// that changes the policy.
	PolicyHash string
	// PolicySerial is the signed policy bundle's serial (0: the policy came
	// from the config file), and PolicyExpired says that bundle had expired
	// (the service could not be reached: the last good bundle decided).
	PolicySerial  uint64
	PolicyExpired bool

	Decision          string // DecisionAllow, DecisionDeny or DecisionDryRunDeny
	Rule              string
	Reason            string
	Status            int
	ErrorType         string
	BytesIn, BytesOut int64
	Latency           time.Duration
	UpstreamLatency   time.Duration // to the upstream's response headers (first byte)
	UpstreamTotal     time.Duration // to the end of the upstream's response

	// Incomplete marks a record recovered from the spool: Warden stopped
	// (crash, SIGKILL) after forwarding the call and before it ended.
	Incomplete bool

	// Count is how many calls an aggregated denial record stands for:
	// repeated denials of one client for one reason within a second are
	// folded into one record (the first folded call's fields, bytes
	// summed). 0 or 1: the record is one call's.
	Count int

	// PromptSHA256 and ResponseSHA256 are the hex SHA-256 of the request
	// body as the app sent it and of the response body as the app received
	// it (the event-stream bytes for streams): evidence that matches a
	// payload without holding it.
	PromptSHA256, ResponseSHA256 string

	// Usage is the model's token count, when the answer said (headers,
	// body or a stream's final event); Cost its price from audit.prices.
	Usage     Usage
	CostUSD   float64
	CostKnown bool

	// BudgetFallback says the app's budgets were decided by this replica
	// alone, on its share of each limit, while the shared budget store was
	// unreachable (budgets.on_store_error: fail_open).
	BudgetFallback bool

	// pending is the spool segment holding the call's intent (Begin), so
	// Write can release it.
	pending *segment

	// Findings are what the app's guards found, one entry per guard,
	// detector and type: counts only, never the values or where they sat.
	Findings []Finding
}

// Path is a call's network path: the caller's side, from what the
// platform vouches for (the identity's strong tags, a trusted load
// balancer's PROXY protocol header), and the upstream's. Each field is
// empty when not known; with a routed or same-VPC caller there is no VPC
// endpoint, with a sidecar no subnet. JSON: src_account, src_vpc,
// src_subnet, src_eni, src_vpce, upstream, upstream_vpce, upstream_region.
type Path struct {
	Account     string // the caller's AWS account
	VPC         string
	Subnet      string
	ENI         string
	VPCEndpoint string // the PrivateLink endpoint the caller came through
	// Upstream is the host Warden sends calls to; UpstreamVPCEndpoint its
	// VPC endpoint id when it is an interface endpoint's name; Region the
	// region it serves.
	Upstream            string
	UpstreamVPCEndpoint string
	Region              string
}

// fields lists Path's JSON names and values, in encoding order.
func (p *Path) fields() [8][2]string {
	return [8][2]string{
		{"src_account", p.Account}, {"src_vpc", p.VPC}, {"src_subnet", p.Subnet}, {"src_eni", p.ENI}, {"src_vpce", p.VPCEndpoint},
		{"upstream", p.Upstream}, {"upstream_vpce", p.UpstreamVPCEndpoint}, {"upstream_region", p.Region},
	}
}

// Calls is how many calls the record stands for: its Count when it
// aggregates several, else 1.
func (r *Record) Calls() int {
	if r.Count > 1 {
		return r.Count
	}
	return 1
}

// Usage counts a call's tokens; Known says the upstream reported them.
type Usage struct {
	Known                 bool
	Input, Output         int64
	CacheRead, CacheWrite int64
}

// Finding counts one guard's findings of one type on a call, and what the
// guard did about them (block, mask, record; record too when a dry-run app's
// guard would have blocked).
type Finding struct {
	Guard    string
	Detector string
	Type     string
	Count    int
	Action   string
	// Phase is "output" for findings in the model's answer (a response
	// body or a streamed event) and "" for the request's: the encoders
	// write "phase" only when set.
	Phase string
}

// AppendJSON appends the record as one JSON object: the record's only
// encoder. Its lines are byte for byte what zap's JSON encoder wrote for
// records before it (same fields, order, escaping and number formats; tags
// sorted by key, where zap followed map order); the zap encoding is kept in
// zapref_test.go only, as TestAppendJSONMatchesZap's reference.
func (r *Record) AppendJSON(b []byte) []byte {
	b = append(b, `{"v":`...)
	b = strconv.AppendInt(b, SchemaVersion, 10)
	b = append(b, `,"time":"`...)
	b = r.Time.AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	if r.Instance != "" {
		b = appendField(b, "instance", r.Instance)
	}
	b = appendField(b, "request_id", r.RequestID)
	if r.UpstreamRequestID != "" {
		b = appendField(b, "upstream_request_id", r.UpstreamRequestID)
	}
	if r.Client != "" {
		b = appendField(b, "client", r.Client)
	}
	if r.Protocol != "" {
		b = appendField(b, "protocol", r.Protocol)
	}
	if r.Mode != "" {
		b = appendField(b, "mode", r.Mode)
	}
	if r.Host != "" {
		b = appendField(b, "host", r.Host)
	}
	if r.Signing != "" {
		b = appendField(b, "signing", r.Signing)
	}
	if r.IdentitySource != "" {
		b = appendField(b, "identity_source", r.IdentitySource)
	}
	if r.IdentityStale {
		b = append(b, `,"identity_stale":true`...)
	}
	if len(r.Tags) > 0 {
		var keyArr [16]string
		keys := keyArr[:0]
		for k := range r.Tags {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b = append(b, `,"tags":{`...)
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, k)
			b = append(b, ':')
			b = appendString(b, r.Tags[k])
		}
		b = append(b, '}')
	}
	if len(r.WeakTags) > 0 {
		b = appendStrings(b, "weak_tags", r.WeakTags)
	}
	for _, f := range r.Path.fields() {
		if f[1] != "" {
			b = appendField(b, f[0], f[1])
		}
	}
	b = appendField(b, "app", r.App)
	if r.EndUser != "" {
		b = appendField(b, "end_user", r.EndUser)
	}
	b = appendField(b, "operation", r.Operation)
	b = appendField(b, "model", r.Model)
	if r.ModelCanonical != "" {
		b = appendField(b, "model_canonical", r.ModelCanonical)
	}
	if len(r.ModelResolved) > 0 {
		b = appendStrings(b, "model_resolved", r.ModelResolved)
		if r.ModelResolvedStale {
			b = append(b, `,"model_resolved_stale":true`...)
		}
	}
	if a := r.Agent; a != nil {
		for _, f := range a.fields() {
			if f[1] != "" {
				b = appendField(b, f[0], f[1])
			}
		}
		if len(a.KnowledgeBases) > 0 {
			b = appendStrings(b, "knowledge_base_ids", a.KnowledgeBases)
		}
		if len(a.Models) > 0 {
			b = appendStrings(b, "agent_models", a.Models)
		}
	}
	if r.PolicyHash != "" {
		b = appendField(b, "policy_hash", r.PolicyHash)
	}
	if r.PolicySerial != 0 {
		b = append(b, `,"policy_serial":`...)
		b = strconv.AppendUint(b, r.PolicySerial, 10)
	}
	if r.PolicyExpired {
		b = append(b, `,"policy_expired":true`...)
	}
	b = appendField(b, "decision", r.Decision)
	b = appendField(b, "rule", r.Rule)
	b = appendField(b, "reason", r.Reason)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(r.Status), 10)
	if r.ErrorType != "" {
		b = appendField(b, "error_type", r.ErrorType)
	}
	if r.Incomplete {
		b = append(b, `,"incomplete":true`...)
	}
	if r.Count > 1 {
		b = appendInt(b, "count", int64(r.Count))
	}
	if len(r.Findings) > 0 {
		b = append(b, `,"findings":[`...)
		for i, f := range r.Findings {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"guard":`...)
			b = appendString(b, f.Guard)
			b = appendField(b, "detector", f.Detector)
			b = appendField(b, "type", f.Type)
			b = append(b, `,"count":`...)
			b = strconv.AppendInt(b, int64(f.Count), 10)
			b = appendField(b, "action", f.Action)
			if f.Phase != "" {
				b = appendField(b, "phase", f.Phase)
			}
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	if r.PromptSHA256 != "" {
		b = appendField(b, "prompt_sha256", r.PromptSHA256)
	}
	if r.ResponseSHA256 != "" {
		b = appendField(b, "response_sha256", r.ResponseSHA256)
	}
	if r.Usage.Known {
		b = appendInt(b, "tokens_in", r.Usage.Input)
		b = appendInt(b, "tokens_out", r.Usage.Output)
		if r.Usage.CacheRead != 0 {
			b = appendInt(b, "cache_read_tokens", r.Usage.CacheRead)
		}
		if r.Usage.CacheWrite != 0 {
			b = appendInt(b, "cache_write_tokens", r.Usage.CacheWrite)
		}
	}
	if r.CostKnown {
		b = append(b, `,"cost_usd":`...)
		b = appendFloat(b, r.CostUSD)
	}
	if r.BudgetFallback {
		b = append(b, `,"budget_fallback":true`...)
	}
	b = append(b, `,"bytes_in":`...)
	b = strconv.AppendInt(b, r.BytesIn, 10)
	b = append(b, `,"bytes_out":`...)
	b = strconv.AppendInt(b, r.BytesOut, 10)
	b = append(b, `,"latency_ms":`...)
	b = appendMillis(b, r.Latency)
	if r.UpstreamLatency > 0 {
		b = append(b, `,"upstream_latency_ms":`...)
		b = appendMillis(b, r.UpstreamLatency)
	}
	if r.UpstreamTotal > 0 {
		b = append(b, `,"upstream_total_ms":`...)
		b = appendMillis(b, r.UpstreamTotal)
	}
	return append(b, '}')
}

// appendStrings appends ,"key":["a","b"].
func appendStrings(b []byte, key string, vs []string) []byte {
	b = append(b, ',', '"')
	b = append(b, key...)
	b = append(b, `":[`...)
	for i, v := range vs {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, v)
	}
	return append(b, ']')
}

// appendInt appends ,"key":n.
func appendInt(b []byte, key string, n int64) []byte {
	b = append(b, ',', '"')
	b = append(b, key...)
	b = append(b, '"', ':')
	return strconv.AppendInt(b, n, 10)
}

// appendFloat appends f as zap does: shortest 'f' form, NaN and infinities
// quoted.
func appendFloat(b []byte, f float64) []byte {
	switch {
	case math.IsNaN(f):
		return append(b, `"NaN"`...)
	case math.IsInf(f, 1):
		return append(b, `"+Inf"`...)
	case math.IsInf(f, -1):
		return append(b, `"-Inf"`...)
	}
	return strconv.AppendFloat(b, f, 'f', -1, 64)
}

// appendField appends ,"key":"value" (keys are constants needing no escape).
func appendField(b []byte, key, v string) []byte {
	b = append(b, ',', '"')
	b = append(b, key...)
	b = append(b, '"', ':')
	return appendString(b, v)
}

// plainPrefix returns the length of s's prefix that needs no escaping,
// eight bytes at a time: printable ASCII other than '"' and '\\'.
func plainPrefix(s string) int {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	i := 0
	for ; i+8 <= len(s); i += 8 {
		w := s[i : i+8]
		x := uint64(w[0]) | uint64(w[1])<<8 | uint64(w[2])<<16 | uint64(w[3])<<24 |
			uint64(w[4])<<32 | uint64(w[5])<<40 | uint64(w[6])<<48 | uint64(w[7])<<56
		q := x ^ (lo * '"')
		bs := x ^ (lo * '\\')
		if ((x-lo*0x20)|(q-lo)|(bs-lo)|x)&hi != 0 {
			break // a byte in this word may need attention: the careful path decides
		}
	}
	for ; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' {
			break
		}
	}
	return i
}

// appendMillis appends d, truncated to whole microseconds, in milliseconds
// as zap writes float64(d.Microseconds())/1000: strconv's shortest 'f' form,
// which for |µs| < 2^50 is exactly the decimal µs/1000 without trailing
// zeros (the double nearest a decimal with three fractional digits has no
// shorter representation at that size).
func appendMillis(b []byte, d time.Duration) []byte {
	us := d.Microseconds()
	if us <= -1<<50 || us >= 1<<50 {
		return strconv.AppendFloat(b, float64(us)/1000, 'f', -1, 64)
	}
	if us < 0 {
		b = append(b, '-')
		us = -us
	}
	b = strconv.AppendInt(b, us/1000, 10)
	if frac := us % 1000; frac != 0 {
		digits := [4]byte{'.', byte('0' + frac/100), byte('0' + frac/10%10), byte('0' + frac%10)}
		n := 4
		for digits[n-1] == '0' {
			n--
		}
		b = append(b, digits[:n]...)
	}
	return b
}

// appendString appends s quoted and escaped as zap's JSON encoder does:
// '"' and '\\' backslashed, \n \r \t, other control bytes as \u00xx,
// invalid UTF-8 as \ufffd, everything else (HTML characters included) as is.
func appendString(b []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	b = append(b, '"')
	i := plainPrefix(s)
	if i == len(s) {
		b = append(b, s...)
		return append(b, '"')
	}
	last := 0
	for i < len(s) {
		c := s[i]
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r != utf8.RuneError || size != 1 {
				i += size
				continue
			}
			b = append(b, s[last:i]...)
			b = append(b, `\ufffd`...)
			i++
			last = i
			continue
		}
		if c >= 0x20 && c != '\\' && c != '"' {
			i++
			continue
		}
		b = append(b, s[last:i]...)
		switch c {
		case '\\', '"':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
		}
		i++
		last = i
	}
	b = append(b, s[last:]...)
	return append(b, '"')
}

// Writer takes a call's record. Begin runs before the call is forwarded
// (an error means: do not forward it); Write runs once when it ends, for
// every call, forwarded or not.
type Writer interface {
	Begin(r *Record) error
	Write(r *Record)
	Close() error
}
