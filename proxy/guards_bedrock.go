package proxy

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"
	"github.com/aws/smithy-go"

	"github.com/warden-egress/warden/authz"
)

// This file is the bedrock guard kind: a detector backed by an Amazon
// Bedrock guardrail. Warden calls ApplyGuardrail with the request's text
// (every extracted span, one text block each) using its own credentials and
// region, at its upstream URL, and treats GUARDRAIL_INTERVENED as a finding.
// Only the input side is checked for now.

// bedrockType is the finding type of a guardrail intervention; the
// assessment's policy names (never the matched values) follow it.
const (
	bedrockType      = "BEDROCK_GUARDRAIL"
	bedrockErrorType = "BEDROCK_GUARDRAIL_ERROR"
	bedrockDetector  = "bedrock"
)

// bedrockGuard is a compiled bedrock: section.
type bedrockGuard struct {
	cfg    authz.BedrockGuardConfig
	action string // block | record
}

// guardrailVerdict is what one ApplyGuardrail call said.
type guardrailVerdict struct {
	intervened bool
	types      []string // policy findings, e.g. TOPIC:Finance, CONTENT:PROMPT_ATTACK, PII:EMAIL
}

// guardrailApplier calls ApplyGuardrail; runInputGuards takes one so the
// tests and the server can supply theirs.
type guardrailApplier func(ctx context.Context, g *bedrockGuard, source types.GuardrailContentSource, texts []string) (guardrailVerdict, error)

// applyGuardrail is the Server's guardrailApplier: the Go SDK with Warden's
// credentials and region, pointed at the upstream URL through Warden's
// upstream transport. No retries: the call's timeout is short and a failure
// is on_error's to decide.
func (s *Server) applyGuardrail(ctx context.Context, g *bedrockGuard, source types.GuardrailContentSource, texts []string) (guardrailVerdict, error) {
	ctx, cancel := context.WithTimeout(ctx, g.cfg.EffectiveTimeout())
	defer cancel()
	client := bedrockruntime.New(bedrockruntime.Options{
		Region:           s.region,
		Credentials:      s.creds,
		BaseEndpoint:     aws.String(s.upstream.String()),
		HTTPClient:       &http.Client{Transport: s.transport},
		RetryMaxAttempts: 1,
	})
	content := make([]types.GuardrailContentBlock, 0, len(texts))
	for _, t := range texts {
		content = append(content, &types.GuardrailContentBlockMemberText{Value: types.GuardrailTextBlock{Text: aws.String(t)}})
	}
	out, err := client.ApplyGuardrail(ctx, &bedrockruntime.ApplyGuardrailInput{
		GuardrailIdentifier: aws.String(g.cfg.ID),
		GuardrailVersion:    aws.String(g.cfg.Version),
		Source:              source,
		Content:             content,
	})
	if err != nil {
		return guardrailVerdict{}, err
	}
	v := guardrailVerdict{intervened: out.Action == types.GuardrailActionGuardrailIntervened}
	if v.intervened {
		v.types = assessmentTypes(out.Assessments)
	}
	return v, nil
}

// assessmentTypes names the policies that acted in the assessments: topic
// names, content filter types, PII entity types, regex names, WORDS. Never
// a matched value.
func assessmentTypes(as []types.GuardrailAssessment) []string {
	var out []string
	add := func(t string) {
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	for _, a := range as {
		if p := a.TopicPolicy; p != nil {
			for _, t := range p.Topics {
				if t.Action != types.GuardrailTopicPolicyActionNone && t.Name != nil {
					add("TOPIC:" + *t.Name)
				}
			}
		}
		if p := a.ContentPolicy; p != nil {
			for _, f := range p.Filters {
				if f.Action != types.GuardrailContentPolicyActionNone {
					add("CONTENT:" + string(f.Type))
				}
			}
		}
		if p := a.SensitiveInformationPolicy; p != nil {
			for _, e := range p.PiiEntities {
				if e.Action != types.GuardrailSensitiveInformationPolicyActionNone {
					add("PII:" + string(e.Type))
				}
			}
			for _, r := range p.Regexes {
				if r.Action != types.GuardrailSensitiveInformationPolicyActionNone && r.Name != nil {
					add("REGEX:" + *r.Name)
				}
			}
		}
		if p := a.WordPolicy; p != nil && (len(p.CustomWords) > 0 || len(p.ManagedWordLists) > 0) {
			add("WORDS")
		}
	}
	slices.Sort(out)
	return out
}

// guardrailErrorSummary says why a call failed without echoing the text:
// the API's error code, or timeout / unreachable.
func guardrailErrorSummary(err error) string {
	var ae smithy.APIError
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "timed out"
	case errors.As(err, &ae):
		return ae.ErrorCode()
	default:
		return "unreachable"
	}
}

// runBedrockGuard applies g's guardrail to texts and reports what the
// caller does: the finding types to act on under g's action, or, when the
// call failed, an error summary (on_error decides).
func runBedrockGuard(ctx context.Context, apply guardrailApplier, g *bedrockGuard, texts []string) (found []string, failed string) {
	if apply == nil {
		return nil, "no client"
	}
	v, err := apply(ctx, g, types.GuardrailContentSourceInput, texts)
	if err != nil {
		return nil, guardrailErrorSummary(err)
	}
	if !v.intervened {
		return nil, ""
	}
	return append([]string{bedrockType}, v.types...), ""
}

// guardrailFailedMsg is the block message when on_error is block.
func guardrailFailedMsg(g *bedrockGuard, why string) string {
	return fmt.Sprintf("the Bedrock guardrail %s (version %s) could not be applied (%s) and the guard blocks on error",
		g.cfg.ID, g.cfg.Version, strings.TrimSpace(why))
}
