package audit

import (
	"encoding/json"
	"fmt"
	"time"
)

// recordJSON mirrors Record.AppendJSON's field names for decoding.
type recordJSON struct {
	V                  int               `json:"v"`
	Kind               string            `json:"kind"`
	Time               time.Time         `json:"time"`
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
	App                string            `json:"app"`
	Operation          string            `json:"operation"`
	Model              string            `json:"model"`
	ModelCanonical     string            `json:"model_canonical"`
	ModelResolved      []string          `json:"model_resolved"`
	ModelResolvedStale bool              `json:"model_resolved_stale"`
	PolicyHash         string            `json:"policy_hash"`
	Decision           string            `json:"decision"`
	Rule               string            `json:"rule"`
	Reason             string            `json:"reason"`
	Status             int               `json:"status"`
	ErrorType          string            `json:"error_type"`
	Incomplete         bool              `json:"incomplete"`
	Findings           []struct {
		Guard, Detector, Type, Action, Phase string
		Count                                int
	} `json:"findings"`
	PromptSHA256     string   `json:"prompt_sha256"`
	ResponseSHA256   string   `json:"response_sha256"`
	TokensIn         *int64   `json:"tokens_in"`
	TokensOut        int64    `json:"tokens_out"`
	CacheReadTokens  int64    `json:"cache_read_tokens"`
	CacheWriteTokens int64    `json:"cache_write_tokens"`
	CostUSD          *float64 `json:"cost_usd"`
	BytesIn          int64    `json:"bytes_in"`
	BytesOut         int64    `json:"bytes_out"`
	LatencyMS        float64  `json:"latency_ms"`
	UpstreamMS       float64  `json:"upstream_latency_ms"`
	UpstreamTotalMS  float64  `json:"upstream_total_ms"`
}

// DecodeRecord parses a call record line (sealed or not; the chain fields
// are ignored). It is the inverse of AppendJSON up to microsecond latencies.
func DecodeRecord(line []byte) (Record, error) {
	var j recordJSON
	if err := json.Unmarshal(line, &j); err != nil {
		return Record{}, fmt.Errorf("audit record: %w", err)
	}
	if j.Kind != "" {
		return Record{}, fmt.Errorf("audit record: a %s line, not a call record", j.Kind)
	}
	r := Record{
		Time: j.Time, Instance: j.Instance, RequestID: j.RequestID, UpstreamRequestID: j.UpstreamRequestID, Client: j.Client,
		Protocol: j.Protocol, Mode: j.Mode, Host: j.Host, Signing: j.Signing, IdentitySource: j.IdentitySource,
		IdentityStale: j.IdentityStale, Tags: j.Tags, WeakTags: j.WeakTags, App: j.App, Operation: j.Operation, Model: j.Model,
		ModelCanonical: j.ModelCanonical, ModelResolved: j.ModelResolved, ModelResolvedStale: j.ModelResolvedStale,
		PolicyHash: j.PolicyHash, Decision: j.Decision, Rule: j.Rule, Reason: j.Reason, Status: j.Status, ErrorType: j.ErrorType,
		Incomplete: j.Incomplete, PromptSHA256: j.PromptSHA256, ResponseSHA256: j.ResponseSHA256, BytesIn: j.BytesIn, BytesOut: j.BytesOut,
		Latency: ms(j.LatencyMS), UpstreamLatency: ms(j.UpstreamMS), UpstreamTotal: ms(j.UpstreamTotalMS),
	}
	for _, f := range j.Findings {
		r.Findings = append(r.Findings, Finding{Guard: f.Guard, Detector: f.Detector, Type: f.Type, Count: f.Count, Action: f.Action, Phase: f.Phase})
	}
	if j.TokensIn != nil {
		r.Usage = Usage{Known: true, Input: *j.TokensIn, Output: j.TokensOut, CacheRead: j.CacheReadTokens, CacheWrite: j.CacheWriteTokens}
	}
	if j.CostUSD != nil {
		r.CostUSD, r.CostKnown = *j.CostUSD, true
	}
	return r, nil
}

func ms(v float64) time.Duration { return time.Duration(v*1000+0.5) * time.Microsecond }
