package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/warden-egress/warden/authz"
)

// `warden policy vpce-policy` turns a Warden policy into the network and IAM
// backstop for workloads that would go around Warden (threat model item 1):
//
//   - a VPC endpoint policy for com.amazonaws.REGION.bedrock-runtime that lets
//     only Warden's principals call the invoke actions, and only on the model
//     and inference-profile ARNs some app of the policy allows;
//   - an identity policy / SCP that denies the invoke actions, bearer-token
//     calls and batch inference to every principal but Warden's (and, with
//     --source-vpce, denies Warden's own principals outside that endpoint).
//
// The model globs become IAM ARN patterns (IAM's * and ? mean what they mean
// in allow.models):
//
//	anthropic.claude-3-5-haiku-*  → arn:aws:bedrock:*::foundation-model/anthropic.claude-3-5-haiku-*
//	us.anthropic.claude-*         → arn:aws:bedrock:*:ACCOUNT:inference-profile/us.anthropic.claude-*
//	                                plus the foundation-model ARN of its base model in every region
//	                                (a cross-region profile needs both)
//	profile_scopes: [us] and a    → inference-profile/us.GLOB as well
//	foundation glob
//	an ARN (arn:aws:bedrock:…)    → as given
//	a glob starting with * or ?   → "*": it can match any id, ARNs included
//	a glob whose text before its  → inference-profile/GLOB too, and foundation-model/*:
//	first wildcard has no dot and   it can match profiles ("u*" matches us.…) whose
//	begins a scope (u*, ap?c.*)     base model it does not constrain
//
// Approximations, all on the safe side of Warden's own decision except the
// last one: regions are "*" in foundation-model ARNs (allow.regions stays
// Warden's job, as do deny rules, operations per app, dry-run and the
// prompt); indirect ids (application inference profiles, prompts, prompt
// routers, provisioned, custom and imported models) are resolved by Warden
// at call time and cannot be resolved here, so they pass the endpoint only
// when allow.models lists their ARN or --indirect adds account-wide patterns
// for them (IAM also checks the foundation models behind an application
// inference profile, which must then be allowed here too). Dry-run apps are
// included like any other app; their calls that Warden would deny are still
// forwarded, and the endpoint policy may then refuse them.

// IAM action names.
const (
	actInvokeModel       = "bedrock:InvokeModel"
	actInvokeStream      = "bedrock:InvokeModelWithResponseStream"
	actInvokeBidi        = "bedrock:InvokeModelWithBidirectionalStream"
	actCountTokens       = "bedrock:CountTokens"
	actApplyGuardrail    = "bedrock:ApplyGuardrail"
	actStartAsyncInvoke  = "bedrock:StartAsyncInvoke"
	actGetAsyncInvoke    = "bedrock:GetAsyncInvoke"
	actListAsyncInvokes  = "bedrock:ListAsyncInvokes"
	actCallWithBearer    = "bedrock:CallWithBearerToken"
	actCreateInvocaction = "bedrock:CreateModelInvocationJob"
)

// iamPolicy is an IAM policy document. Field order is the output order.
type iamPolicy struct {
	Version   string         `json:"Version"`
	Statement []iamStatement `json:"Statement"`
}

type iamStatement struct {
	Sid       string                    `json:"Sid"`
	Effect    string                    `json:"Effect"`
	Principal any                       `json:"Principal,omitempty"`
	Action    []string                  `json:"Action"`
	Resource  []string                  `json:"Resource"`
	Condition map[string]map[string]any `json:"Condition,omitempty"`
}

// vpceOutput is the combined document.
type vpceOutput struct {
	VPCEndpointService string     `json:"vpc_endpoint_service"`
	VPCEndpointPolicy  *iamPolicy `json:"vpc_endpoint_policy"`
	DenyPolicy         *iamPolicy `json:"deny_policy"`
}

type vpceOptions struct {
	principals []string
	region     string
	account    string
	sourceVPCE []string
	indirect   bool
}

const vpceUsage = `  warden policy vpce-policy --config FILE --principal ARN [--principal ARN …] [--region R]
        [--account A] [--source-vpce VPCE-ID …] [--indirect] [--only vpce|deny]
        emit the VPC endpoint policy for bedrock-runtime (only Warden's principals, only the
        allowed model and profile ARNs) and the identity policy / SCP denying everyone else
`

func cmdPolicyVPCE(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("policy vpce-policy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "configuration file (YAML)")
	var principals, vpces listFlag
	fs.Var(&principals, "principal", "ARN of a principal Warden calls Bedrock as (repeatable; * and ? allowed)")
	region := fs.String("region", "", "region of the VPC endpoint (default: upstream.region)")
	account := fs.String("account", "", "account id in inference-profile ARNs (default: the principals' account, else *)")
	fs.Var(&vpces, "source-vpce", "also deny Warden's principals outside this VPC endpoint id (repeatable)")
	indirect := fs.Bool("indirect", false, "allow the account's application inference profiles, prompts, prompt routers, provisioned, custom and imported models through the endpoint")
	only := fs.String("only", "", "print only one policy: vpce or deny")
	if err := parsePolicyFlags(fs, args, path); err != nil {
		return err
	}
	switch *only {
	case "", "vpce", "deny":
	default:
		return fmt.Errorf("--only %q: want vpce or deny", *only)
	}
	if len(principals) == 0 {
		return errors.New("--principal is required (the ARN of the role Warden calls Bedrock as)")
	}
	for _, p := range principals {
		if err := checkPrincipalARN(p); err != nil {
			return err
		}
	}
	for _, v := range vpces {
		if !strings.HasPrefix(v, "vpce-") {
			return fmt.Errorf("--source-vpce %q: want a VPC endpoint id (vpce-…)", v)
		}
	}
	cfg, _, err := loadPolicy(*path)
	if err != nil {
		return err
	}
	opts := vpceOptions{principals: principals, region: *region, account: *account, sourceVPCE: vpces, indirect: *indirect}
	if opts.region == "" {
		opts.region = cfg.Upstream.Region
	}
	if opts.region == "" {
		return errors.New("--region is required (the config has no upstream.region)")
	}
	if opts.account == "" {
		opts.account = principalsAccount(principals)
	}
	out := vpceOutput{
		VPCEndpointService: "com.amazonaws." + opts.region + ".bedrock-runtime",
		VPCEndpointPolicy:  vpcEndpointPolicy(cfg.Apps, opts),
		DenyPolicy:         denyPolicy(opts),
	}
	var v any = out
	switch *only {
	case "vpce":
		v = out.VPCEndpointPolicy
	case "deny":
		v = out.DenyPolicy
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "%s\n", b)
	return err
}

// checkPrincipalARN accepts an IAM role, user or root ARN (wildcards allowed).
func checkPrincipalARN(p string) error {
	parts := strings.SplitN(p, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" || parts[2] != "iam" || parts[4] == "" || parts[5] == "" {
		return fmt.Errorf("--principal %q: want an IAM principal ARN (arn:aws:iam::ACCOUNT:role/NAME)", p)
	}
	return nil
}

// principalsAccount is the account every principal names, or "*".
func principalsAccount(principals []string) string {
	acct := ""
	for _, p := range principals {
		a := strings.SplitN(p, ":", 6)[4]
		if strings.ContainsAny(a, "*?") || (acct != "" && a != acct) {
			return "*"
		}
		acct = a
	}
	return acct
}

func hasWildcard(s string) bool { return strings.ContainsAny(s, "*?") }

// scopePrefix reports whether a glob starts with a system inference profile
// scope ("us.", "global.", …) and returns the scope and the rest.
func scopePrefix(g string) (string, string, bool) {
	scope, rest, ok := strings.Cut(g, ".")
	if !ok || authz.ScopeGeography(scope) == nil {
		return "", "", false
	}
	return scope, rest, true
}

// mayMatchProfile reports whether a glob that does not start with a scope
// and a dot can still match a system inference profile id: its text before
// the first wildcard has no dot and begins some scope's name.
func mayMatchProfile(g string) bool {
	i := strings.IndexAny(g, "*?")
	if i < 0 || strings.Contains(g[:i], ".") {
		return false
	}
	for _, s := range []string{"us", "eu", "apac", "jp", "au", "ca", "us-gov", "global"} {
		if strings.HasPrefix(s, g[:i]) && authz.ScopeGeography(s) != nil {
			return true
		}
	}
	return false
}

// modelResources turns the apps' model globs into sorted, deduplicated ARN
// patterns; ["*"] when a glob can match any id.
func modelResources(apps []authz.AppConfig, opts vpceOptions) []string {
	set := map[string]bool{}
	fm := func(g string) { set["arn:aws:bedrock:*::foundation-model/"+g] = true }
	ip := func(g string) { set["arn:aws:bedrock:*:"+opts.account+":inference-profile/"+g] = true }
	for _, a := range apps {
		for _, g := range a.Allow.Models {
			switch {
			case g == "":
			case g[0] == '*' || g[0] == '?':
				return []string{"*"}
			case strings.HasPrefix(g, "arn:"):
				set[g] = true
			default:
				if _, rest, ok := scopePrefix(g); ok {
					ip(g)
					fm(rest) // the base model in the profile's destination regions
					continue
				}
				fm(g)
				if mayMatchProfile(g) {
					// "u*", "ap?c.*": the glob can match system profile ids
					// whose base model it does not constrain.
					ip(g)
					fm("*")
				}
				for _, s := range a.Allow.ProfileScopes {
					ip(s + "." + g)
				}
			}
		}
	}
	if opts.indirect {
		for _, kind := range []string{"application-inference-profile", "prompt", "prompt-router", "default-prompt-router", "provisioned-model", "custom-model", "custom-model-deployment", "imported-model"} {
			set["arn:aws:bedrock:*:"+opts.account+":"+kind+"/*"] = true
		}
	}
	out := make([]string, 0, len(set))
	for r := range set {
		out = append(out, r)
	}
	sort.Strings(out)
	return out
}

// asyncAllowed reports whether some app may start async invocations.
func asyncAllowed(apps []authz.AppConfig) bool {
	for _, a := range apps {
		if len(a.Allow.AsyncOutputPrefixes) == 0 {
			continue // every StartAsyncInvoke of the app is denied
		}
		for _, op := range a.Allow.Operations {
			if op == "StartAsyncInvoke" || op == "*" {
				return true
			}
		}
	}
	return false
}

// principalMatch is the Principal element and, for wildcard ARNs (which a
// Principal element cannot hold), the condition that names them instead.
func principalMatch(principals []string) (any, map[string]map[string]any) {
	sorted := append([]string(nil), principals...)
	sort.Strings(sorted)
	sorted = dedupe(sorted)
	for _, p := range sorted {
		if hasWildcard(p) {
			return "*", map[string]map[string]any{"ArnLike": {"aws:PrincipalArn": sorted}}
		}
	}
	return map[string]any{"AWS": sorted}, nil
}

func dedupe(s []string) []string {
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

func vpcEndpointPolicy(apps []authz.AppConfig, opts vpceOptions) *iamPolicy {
	principal, cond := principalMatch(opts.principals)
	models := modelResources(apps, opts)
	invoke := []string{actInvokeModel, actInvokeStream, actCountTokens}
	async := asyncAllowed(apps)
	if async {
		invoke = append(invoke, actStartAsyncInvoke)
	}
	p := &iamPolicy{Version: "2012-10-17"}
	if len(models) > 0 {
		p.Statement = append(p.Statement, iamStatement{
			Sid: "WardenInvokesAllowedModels", Effect: "Allow", Principal: principal,
			Action: invoke, Resource: models, Condition: cond,
		})
	}
	p.Statement = append(p.Statement, iamStatement{
		Sid: "WardenAppliesGuardrails", Effect: "Allow", Principal: principal,
		Action:   []string{actApplyGuardrail},
		Resource: []string{"arn:aws:bedrock:*:" + opts.account + ":guardrail/*"}, Condition: cond,
	})
	if async {
		p.Statement = append(p.Statement, iamStatement{
			Sid: "WardenAsyncInvocations", Effect: "Allow", Principal: principal,
			Action:   []string{actGetAsyncInvoke, actStartAsyncInvoke},
			Resource: []string{"arn:aws:bedrock:*:" + opts.account + ":async-invoke/*"}, Condition: cond,
		}, iamStatement{
			// ListAsyncInvokes supports no resource-level permission.
			Sid: "WardenListsAsyncInvocations", Effect: "Allow", Principal: principal,
			Action: []string{actListAsyncInvokes}, Resource: []string{"*"}, Condition: cond,
		})
	}
	return p
}

// denyPolicy denies every way to invoke a model to all but Warden's
// principals; it goes on app roles as a permissions boundary / identity
// policy, or in an SCP for the accounts.
func denyPolicy(opts vpceOptions) *iamPolicy {
	sorted := append([]string(nil), opts.principals...)
	sort.Strings(sorted)
	sorted = dedupe(sorted)
	p := &iamPolicy{Version: "2012-10-17", Statement: []iamStatement{{
		Sid:    "DenyBedrockInvokeExceptWarden",
		Effect: "Deny",
		Action: []string{actApplyGuardrail, actCallWithBearer, actCountTokens, actCreateInvocaction, actGetAsyncInvoke,
			actInvokeModel, actInvokeBidi, actInvokeStream, actListAsyncInvokes, actStartAsyncInvoke},
		Resource:  []string{"*"},
		Condition: map[string]map[string]any{"ArnNotLike": {"aws:PrincipalArn": sorted}},
	}}}
	if len(opts.sourceVPCE) > 0 {
		vpces := append([]string(nil), opts.sourceVPCE...)
		sort.Strings(vpces)
		p.Statement = append(p.Statement, iamStatement{
			Sid:    "DenyWardenOutsideItsEndpoint",
			Effect: "Deny",
			Action: []string{actApplyGuardrail, actCountTokens, actGetAsyncInvoke, actInvokeModel, actInvokeBidi,
				actInvokeStream, actListAsyncInvokes, actStartAsyncInvoke},
			Resource: []string{"*"},
			Condition: map[string]map[string]any{
				"ArnLike":         {"aws:PrincipalArn": sorted},
				"StringNotEquals": {"aws:SourceVpce": dedupe(vpces)},
			},
		})
	}
	return p
}
