package audit

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"
)

// recordJSON mirrors Record.AppendJSON's field names for decoding.
type recordJSON struct {
	V                  int               `json:"v"`
	Kind               string            `json:"kind"`
	ID                 string            `json:"id"`
	Time               json.RawMessage   `json:"time"`
	Instance           string            `json:"instance"`
	RequestID          string            `json:"request_id"`
	UpstreamRequestID  string            `json:"upstream_request_id"`
	Client             string            `json:"client"`
	Protocol           string            `json:"protocol"`
	Mode               string            `json:"mode"`
	Host               string            `json:"host"`
	Signing            string            `json:"signing"`
	IdentitySource     string            `json:"identity_source"`
	IdentityStale      bool              `json:"identity_stale"`
	Tags               map[string]string `json:"tags"`
	WeakTags           []string          `json:"weak_tags"`
	SrcAccount         string            `json:"src_account"`
	SrcVPC             string            `json:"src_vpc"`
	SrcSubnet          string            `json:"src_subnet"`
	SrcENI             string            `json:"src_eni"`
	SrcVPCE            string            `json:"src_vpce"`
	Upstream           string            `json:"upstream"`
	UpstreamVPCE       string            `json:"upstream_vpce"`
	UpstreamRegion     string            `json:"upstream_region"`
	App                string            `json:"app"`
	EndUser            string            `json:"end_user"`
	Operation          string            `json:"operation"`
	Model              string            `json:"model"`
	ModelCanonical     string            `json:"model_canonical"`
	ModelResolved      []string          `json:"model_resolved"`
	ModelResolvedStale bool              `json:"model_resolved_stale"`
	AgentFields
	PolicyHash    string `json:"policy_hash"`
	PolicySerial  uint64 `json:"policy_serial"`
	PolicyExpired bool   `json:"policy_expired"`
	Decision      string `json:"decision"`
	Rule          string `json:"rule"`
	Reason        string `json:"reason"`
	Status        int    `json:"status"`
	ErrorType     string `json:"error_type"`
	Incomplete    bool   `json:"incomplete"`
	Count         int    `json:"count"`
	Findings      []struct {
		Guard, Detector, Type, Action, Phase string
		Count                                int
	} `json:"findings"`
	PromptSHA256     string      `json:"prompt_sha256"`
	ResponseSHA256   string      `json:"response_sha256"`
	TokensIn         *int64      `json:"tokens_in"`
	TokensOut        int64       `json:"tokens_out"`
	CacheReadTokens  int64       `json:"cache_read_tokens"`
	CacheWriteTokens int64       `json:"cache_write_tokens"`
	CostUSD          *jsonNumber `json:"cost_usd"`
	BudgetFallback   bool        `json:"budget_fallback"`
	BytesIn          int64       `json:"bytes_in"`
	BytesOut         int64       `json:"bytes_out"`
	LatencyMS        jsonNumber  `json:"latency_ms"`
	UpstreamMS       jsonNumber  `json:"upstream_latency_ms"`
	UpstreamTotalMS  jsonNumber  `json:"upstream_total_ms"`
}

// DecodeRecord parses a call record line (sealed or not; the chain fields
// are ignored). It is the inverse of AppendJSON up to microsecond latencies.
func DecodeRecord(line []byte) (Record, error) {
	kind, _, r, err := decodeLine(line)
	if err == nil && kind != "" {
		err = fmt.Errorf("audit record: a %s line, not a call record", kind)
	}
	return r, err
}

// decodeLine parses any audit line: a call record into r, or just the kind
// and id of a checkpoint or capture line. It is lenient where readers of
// older or foreign lines need it: time as RFC 3339 or epoch seconds (zap's
// default), non-finite numbers as zap writes them (cost then unknown).
func decodeLine(line []byte) (kind, id string, r Record, err error) {
	var j recordJSON
	if err := json.Unmarshal(line, &j); err != nil {
		return "", "", Record{}, fmt.Errorf("audit record: %w", err)
	}
	t, err := parseTime(j.Time)
	if err != nil {
		return "", "", Record{}, fmt.Errorf("audit record: %w", err)
	}
	if j.Kind != "" {
		return j.Kind, j.ID, Record{Time: t}, nil
	}
	if j.Count < 0 || j.Count > maxCount {
		return "", "", Record{}, fmt.Errorf("audit record: count %d out of range (0 to %d)", j.Count, maxCount)
	}
	r = Record{
		Time: t, Instance: j.Instance, RequestID: j.RequestID, UpstreamRequestID: j.UpstreamRequestID, Client: j.Client,
		Protocol: j.Protocol, Mode: j.Mode, Host: j.Host, Signing: j.Signing, IdentitySource: j.IdentitySource,
		IdentityStale: j.IdentityStale, Tags: j.Tags, WeakTags: j.WeakTags, App: j.App, EndUser: j.EndUser, Operation: j.Operation, Model: j.Model,
		ModelCanonical: j.ModelCanonical, ModelResolved: j.ModelResolved, ModelResolvedStale: j.ModelResolvedStale,
		PolicyHash: j.PolicyHash, PolicySerial: j.PolicySerial, PolicyExpired: j.PolicyExpired, Decision: j.Decision, Rule: j.Rule, Reason: j.Reason, Status: j.Status, ErrorType: j.ErrorType,
		Incomplete: j.Incomplete, Count: j.Count, PromptSHA256: j.PromptSHA256, ResponseSHA256: j.ResponseSHA256, BytesIn: j.BytesIn, BytesOut: j.BytesOut,
		BudgetFallback: j.BudgetFallback,
		Latency:        ms(float64(j.LatencyMS)), UpstreamLatency: ms(float64(j.UpstreamMS)), UpstreamTotal: ms(float64(j.UpstreamTotalMS)),
		Path: Path{Account: j.SrcAccount, VPC: j.SrcVPC, Subnet: j.SrcSubnet, ENI: j.SrcENI, VPCEndpoint: j.SrcVPCE,
			Upstream: j.Upstream, UpstreamVPCEndpoint: j.UpstreamVPCE, Region: j.UpstreamRegion},
	}
	if a := j.AgentFields; a.AgentID != "" || a.AgentAliasID != "" || a.FlowID != "" || a.FlowAliasID != "" || a.SessionID != "" ||
		len(a.KnowledgeBases) > 0 || len(a.Models) > 0 {
		r.Agent = &a
	}
	for _, f := range j.Findings {
		r.Findings = append(r.Findings, Finding{Guard: f.Guard, Detector: f.Detector, Type: f.Type, Count: f.Count, Action: f.Action, Phase: f.Phase})
	}
	if j.TokensIn != nil {
		r.Usage = Usage{Known: true, Input: *j.TokensIn, Output: j.TokensOut, CacheRead: j.CacheReadTokens, CacheWrite: j.CacheWriteTokens}
	}
	if c := j.CostUSD; c != nil && !math.IsNaN(float64(*c)) && !math.IsInf(float64(*c), 0) {
		r.CostUSD, r.CostKnown = float64(*c), true
	}
	return "", "", r, nil
}

// maxCount bounds an aggregated record's count: far above what one window
// of one client can hold, low enough that no sum of counts overflows.
const maxCount = 1 << 40

// ms converts milliseconds to a Duration; a value no record could hold
// (negative, non-finite, beyond ~30 years) is -1, "unknown".
func ms(v float64) time.Duration {
	if !(v >= 0 && v < 1e12) { // NaN fails both
		return -1
	}
	return time.Duration(v*1000+0.5) * time.Microsecond
}

// jsonNumber takes a number or the strings zap writes for non-finite
// floats ("NaN", "+Inf", "-Inf").
type jsonNumber float64

func (n *jsonNumber) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || !(math.IsNaN(f) || math.IsInf(f, 0)) {
			return fmt.Errorf("number %q", s)
		}
		*n = jsonNumber(f)
		return nil
	}
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		return err
	}
	*n = jsonNumber(f)
	return nil
}

// parseTime takes RFC 3339 (AppendJSON) or epoch seconds (zap's default
// time encoder).
func parseTime(raw json.RawMessage) (time.Time, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return time.Time{}, nil
	}
	if raw[0] == '"' {
		var t time.Time
		err := json.Unmarshal(raw, &t)
		return t.UTC(), err
	}
	var secs float64
	if err := json.Unmarshal(raw, &secs); err != nil {
		return time.Time{}, err
	}
	if math.IsNaN(secs) || math.Abs(secs) > 1e11 {
		return time.Time{}, fmt.Errorf("time %v out of range", secs)
	}
	whole, frac := math.Modf(secs)
	return time.Unix(int64(whole), int64(frac*1e9)).UTC(), nil
}
