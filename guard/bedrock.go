package guard

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"
	"github.com/aws/smithy-go"

	"github.com/warden-egress/warden/bedrock"
)

// This file is the bedrock guard kind: a detector backed by an Amazon
// Bedrock guardrail. Warden calls ApplyGuardrail with the request's text
// (every extracted span, one text block each) using its own credentials and
// region, at its upstream URL, and treats GUARDRAIL_INTERVENED as a finding.
//
// Input: the request's texts, source INPUT, before anything is forwarded.
// Output: a unary answer's texts (Converse, InvokeModel), source OUTPUT,
// once the whole answer is buffered and before the client sees any of it
// (CheckAnswer). Streamed answers (ConverseStream,
// InvokeModelWithResponseStream) are NOT checked by this kind: a paid,
// round-tripping call per event would stall the stream and still see only
// fragments. For streams, attach the guardrail to the call itself with
// apps[].bedrock_guardrail, which Bedrock applies to streamed answers.
//
// The guards reach the guardrail through the Guardrail interface: Bedrock
// is its implementation for Amazon Bedrock's ApplyGuardrail, and tests plug
// a fake.

// bedrockType is the finding type of a guardrail intervention; the
// assessment's policy names (never the matched values) follow it.
const (
	bedrockType      = "BEDROCK_GUARDRAIL"
	bedrockErrorType = "BEDROCK_GUARDRAIL_ERROR"
	bedrockDetector  = "bedrock"
)

// bedrockGuard is a compiled bedrock: section.
type bedrockGuard struct {
	cfg    BedrockConfig
	action string // block | record
}

// Guardrail applies an Amazon Bedrock guardrail to texts.
type Guardrail interface {
	ApplyGuardrail(ctx context.Context, req GuardrailRequest) (Verdict, error)
}

// GuardrailRequest is one ApplyGuardrail call.
type GuardrailRequest struct {
	// ID and Version name the guardrail (bedrock.id, bedrock.version).
	ID, Version string
	// Source is INPUT for a request's texts, OUTPUT for an answer's.
	Source types.GuardrailContentSource
	// Texts are the call's texts, one text block each.
	Texts []string
}

// Verdict is what one ApplyGuardrail call said.
type Verdict struct {
	// Intervened is Bedrock's GUARDRAIL_INTERVENED.
	Intervened bool
	// Types name the policies that acted, e.g. TOPIC:Finance,
	// CONTENT:PROMPT_ATTACK, PII:EMAIL; never a matched value.
	Types []string
}

// BedrockOptions configure a Bedrock guardrail client.
type BedrockOptions struct {
	Region      string
	Credentials aws.CredentialsProvider
	// Endpoint is the Bedrock runtime URL (Warden's upstream).
	Endpoint string
	// HTTPClient sends the calls (Warden's upstream transport).
	HTTPClient bedrockruntime.HTTPClient
}

// Bedrock is the Guardrail of Amazon Bedrock's ApplyGuardrail: the Go SDK
// with Warden's credentials and region, at its upstream URL through its
// upstream transport. No retries: the call's timeout is short and a
// failure is on_error's to decide.
type Bedrock struct {
	client *bedrockruntime.Client
}

// NewBedrock returns the ApplyGuardrail client o describes.
func NewBedrock(o BedrockOptions) *Bedrock {
	return &Bedrock{client: bedrockruntime.New(bedrockruntime.Options{
		Region:           o.Region,
		Credentials:      o.Credentials,
		BaseEndpoint:     aws.String(o.Endpoint),
		HTTPClient:       o.HTTPClient,
		RetryMaxAttempts: 1,
	})}
}

// ApplyGuardrail implements Guardrail.
func (b *Bedrock) ApplyGuardrail(ctx context.Context, req GuardrailRequest) (Verdict, error) {
	content := make([]types.GuardrailContentBlock, 0, len(req.Texts))
	for _, t := range req.Texts {
		content = append(content, &types.GuardrailContentBlockMemberText{Value: types.GuardrailTextBlock{Text: aws.String(t)}})
	}
	out, err := b.client.ApplyGuardrail(ctx, &bedrockruntime.ApplyGuardrailInput{
		GuardrailIdentifier: aws.String(req.ID),
		GuardrailVersion:    aws.String(req.Version),
		Source:              req.Source,
		Content:             content,
	})
	if err != nil {
		return Verdict{}, err
	}
	v := Verdict{Intervened: out.Action == types.GuardrailActionGuardrailIntervened}
	if v.Intervened {
		v.Types = assessmentTypes(out.Assessments)
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

// runBedrockGuard applies g's guardrail to texts through gr and reports
// what the caller does: the finding types to act on under g's action, or,
// when the call failed, an error summary (on_error decides). source is
// INPUT for a request, OUTPUT for an answer; ctx is the client's request
// context, and the guard's timeout (bedrock.timeout) is added on top, so a
// client that goes away cancels the call.
func runBedrockGuard(ctx context.Context, gr Guardrail, g *bedrockGuard, source types.GuardrailContentSource, texts []string) (found []string, failed string) {
	if gr == nil {
		return nil, "no client"
	}
	ctx, cancel := context.WithTimeout(ctx, g.cfg.EffectiveTimeout())
	defer cancel()
	v, err := gr.ApplyGuardrail(ctx, GuardrailRequest{ID: g.cfg.ID, Version: g.cfg.Version, Source: source, Texts: texts})
	if err != nil {
		return nil, guardrailErrorSummary(err)
	}
	if !v.Intervened {
		return nil, ""
	}
	return append([]string{bedrockType}, v.Types...), ""
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
func applyOutputBedrock(ctx context.Context, gr Guardrail, o *outputScan, ex bedrock.Extracted) {
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
		found, failed := runBedrockGuard(ctx, gr, g.bedrock, types.GuardrailContentSourceOutput, texts)
		if failed != "" {
			act := Allow
			if g.bedrock.cfg.BlocksOnError() {
				act = o.blockAction()
				if o.errs[gi] == "" {
					o.errs[gi] = guardrailFailedMsg(g.bedrock, failed)
				}
			}
			o.add(Finding{Guard: g.name, Detector: bedrockDetector, Type: bedrockErrorType, Count: 1, Action: act})
			continue
		}
		for _, t := range found {
			act := g.bedrock.action
			if act == Block {
				o.blockType(gi, t)
				act = o.blockAction()
			}
			o.add(Finding{Guard: g.name, Detector: bedrockDetector, Type: t, Count: 1, Action: act})
		}
	}
}
