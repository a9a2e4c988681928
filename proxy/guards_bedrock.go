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

	"github.com/warden-egress/warden/audit"
	"github.com/warden-egress/warden/bedrock"
	"github.com/warden-egress/warden/guard"
)

// This file is the bedrock guard kind: a detector backed by an Amazon
// Bedrock guardrail. Warden calls ApplyGuardrail with the request's text
// (every extracted span, one text block each) using its own credentials and
// region, at its upstream URL, and treats GUARDRAIL_INTERVENED as a finding.
//
// Input: the request's texts, source INPUT, before anything is forwarded.
// Output: a unary answer's texts (Converse, InvokeModel), source OUTPUT,
// once the whole answer is buffered and before the client sees any of it
// (relayGuardedUnary). Streamed answers (ConverseStream,
// InvokeModelWithResponseStream) are NOT checked by this kind: a paid,
// round-tripping call per event would stall the stream and still see only
// fragments. For streams, attach the guardrail to the call itself with
// apps[].bedrock_guardrail, which Bedrock applies to streamed answers.

// bedrockType is the finding type of a guardrail intervention; the
// assessment's policy names (never the matched values) follow it.
const (
	bedrockType      = "BEDROCK_GUARDRAIL"
	bedrockErrorType = "BEDROCK_GUARDRAIL_ERROR"
	bedrockDetector  = "bedrock"
)

// bedrockGuard is a compiled bedrock: section.
type bedrockGuard struct {
	cfg    guard.BedrockConfig
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
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.As(err, &ae):
		return ae.ErrorCode()
	default:
		return "unreachable"
	}
}

// runBedrockGuard applies g's guardrail to texts and reports what the
// caller does: the finding types to act on under g's action, or, when the
// call failed, an error summary (on_error decides). source is INPUT for a
// request, OUTPUT for an answer; ctx is the client's request context (the
// guard's timeout is added on top), so a client that goes away cancels it.
func runBedrockGuard(ctx context.Context, apply guardrailApplier, g *bedrockGuard, source types.GuardrailContentSource, texts []string) (found []string, failed string) {
	if apply == nil {
		return nil, "no client"
	}
	v, err := apply(ctx, g, source, texts)
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

// applyOutputBedrock runs the output guards with a bedrock: detector over a
// unary answer's texts (source OUTPUT) and notes into o what they found:
// GUARDRAIL_INTERVENED as findings under the guard's action, a failed call
// under on_error. Not called for streams (see the top of this file).
func applyOutputBedrock(ctx context.Context, apply guardrailApplier, o *outputScan, ex bedrock.Extracted) {
	if len(ex.Texts) == 0 {
		return
	}
	var texts []string
	for gi, g := range o.guards {
		if g.bedrock == nil {
			continue
		}
		if msg, _ := o.blocked(); msg != "" && !o.dryRun {
			return // denied already: spare the paid call
		}
		if texts == nil {
			texts = make([]string, len(ex.Texts))
			for i, sp := range ex.Texts {
				texts[i] = sp.Text
			}
		}
		found, failed := runBedrockGuard(ctx, apply, g.bedrock, types.GuardrailContentSourceOutput, texts)
		if failed != "" {
			act := guard.Allow
			if g.bedrock.cfg.BlocksOnError() {
				act = o.blockAction()
				if o.errs[gi] == "" {
					o.errs[gi] = guardrailFailedMsg(g.bedrock, failed)
				}
			}
			o.add(audit.Finding{Guard: g.name, Detector: bedrockDetector, Type: bedrockErrorType, Count: 1, Action: act})
			continue
		}
		for _, t := range found {
			act := g.bedrock.action
			if act == guard.Block {
				o.blockType(gi, t)
				act = o.blockAction()
			}
			o.add(audit.Finding{Guard: g.name, Detector: bedrockDetector, Type: t, Count: 1, Action: act})
		}
	}
}
