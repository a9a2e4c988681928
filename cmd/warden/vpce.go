package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"

	"github.com/warden-egress/warden/authz/policy"
)

// `warden policy vpce-policy` turns a Warden policy into the network and IAM
// backstop for workloads that would go around Warden (threat model item 1):
//
//   - a VPC endpoint policy for com.amazonaws.REGION.bedrock-runtime that lets
//     only Warden's principals call the invoke actions, and only on the model
//     and inference-profile ARNs some app of the policy allows;
//   - an identity policy / SCP that denies every Bedrock data-plane action
//     (bedrock-runtime, the agent runtime, batch inference, bearer tokens and
//     the separate bedrock-mantle service, see opActions) to every principal
//     but Warden's roles; denies creating or changing those roles to all but
//     the platform's admin principals, since the exemption is only as strong
//     as the roles it names; and, with --source-vpce, denies Warden's own
//     roles the bedrock-runtime calls made outside that endpoint;
//   - the identity policy of Warden's own roles: the same runtime calls as
//     the endpoint policy (through the endpoint with --source-vpce) and the
//     control-plane reads that resolve indirect model ids.
//
// deploy/iam/*.json are this command's output for deploy/examples/warden.yaml
// (TestDeployIAMPoliciesGenerated keeps them in step).
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
	actGuardrailChecks   = "bedrock:InvokeGuardrailChecks"
	actStartAsyncInvoke  = "bedrock:StartAsyncInvoke"
	actGetAsyncInvoke    = "bedrock:GetAsyncInvoke"
	actListAsyncInvokes  = "bedrock:ListAsyncInvokes"
	actCallWithBearer    = "bedrock:CallWithBearerToken"
	actCreateInvocaction = "bedrock:CreateModelInvocationJob"
	actMantleInference   = "bedrock-mantle:CreateInference"
	actMantleBearer      = "bedrock-mantle:CallWithBearerToken"
	// actClaudeManagedAgents matches the IAM actions of Claude Managed
	// Agents for Amazon Bedrock (bedrock.REGION.amazonaws.com/anthropic/v1:
	// agents, sessions, memory stores). The service is in preview and AWS
	// says its action names may change; the one named in its user guide is
	// bedrock:CreateAnthropicSessionConnection, so the family is matched by
	// pattern. UNCONFIRMED for every other action: if AWS names one without
	// "Anthropic", Warden's calls to it are refused upstream (closed) and
	// the deny policy misses it (open) — recheck at general availability.
	actClaudeManagedAgents = "bedrock:*Anthropic*"
)

// opAction says which IAM actions authorise one API operation; no actions
// means the operation is not a data-plane call (why says why). The table
// follows the Service Authorization Reference, "Actions, resources, and
// condition keys for Amazon Bedrock" (docs.aws.amazon.com/service-authorization/
// latest/reference/list_amazonbedrock.html) and "… for Amazon Bedrock Powered
// by AWS Mantle" (list_bedrock-mantle.html), the user guide's "Making
// inference requests" (inference.html) and the SDKs' own doc comments
// (Converse → bedrock:InvokeModel, RetrieveAndGenerateStream →
// bedrock:RetrieveAndGenerate). TestDenyPolicyCoversSDKOperations fails when
// an SDK operation has no row here, so an SDK upgrade that adds one cannot
// slip past the backstop.
type opAction struct {
	api     string // Go SDK client package, or the surface that has none
	op      string // operation name
	actions []string
	why     string
}

// The APIs of opActions.
const (
	apiRuntime          = "bedrockruntime"      // github.com/aws/aws-sdk-go-v2/service/bedrockruntime
	apiAgentRuntime     = "bedrockagentruntime" // github.com/aws/aws-sdk-go-v2/service/bedrockagentruntime
	apiRuntimeHTTP      = "bedrock-runtime (OpenAI-compatible paths, no SDK operation)"
	apiControl          = "bedrock (control plane)"
	apiMantle           = "bedrock-mantle (bedrock-mantle.REGION.api.aws, no Go SDK)"
	apiAnthropicBedrock = "bedrock (bedrock.REGION.amazonaws.com/anthropic/v1, no Go SDK)"
)

func opActions() []opAction {
	same := func(api, op string) opAction { return opAction{api: api, op: op, actions: []string{"bedrock:" + op}} }
	with := func(api, op string, actions ...string) opAction { return opAction{api: api, op: op, actions: actions} }
	notData := func(api, op, why string) opAction { return opAction{api: api, op: op, why: why} }
	const tagging = "tagging: the bedrock:TagResource family is shared with the control plane and carries no prompt"
	return []opAction{
		same(apiRuntime, "ApplyGuardrail"),
		with(apiRuntime, "Converse", actInvokeModel),
		with(apiRuntime, "ConverseStream", actInvokeStream),
		same(apiRuntime, "CountTokens"),
		same(apiRuntime, "GetAsyncInvoke"),
		// New in the 2026 SDKs; no reference row was at hand, so the action
		// is assumed to carry the operation's name like its siblings. If AWS
		// names it otherwise, the endpoint refuses Warden's checks (closed)
		// and the deny misses that one operation (open): recheck on upgrade.
		same(apiRuntime, "InvokeGuardrailChecks"),
		same(apiRuntime, "InvokeModel"),
		same(apiRuntime, "InvokeModelWithBidirectionalStream"),
		same(apiRuntime, "InvokeModelWithResponseStream"),
		same(apiRuntime, "ListAsyncInvokes"),
		same(apiRuntime, "StartAsyncInvoke"),

		same(apiAgentRuntime, "CreateInvocation"),
		same(apiAgentRuntime, "CreateSession"),
		same(apiAgentRuntime, "DeleteAgentMemory"),
		same(apiAgentRuntime, "DeleteSession"),
		same(apiAgentRuntime, "EndSession"),
		same(apiAgentRuntime, "GenerateQuery"),
		same(apiAgentRuntime, "GetAgentMemory"),
		// The flow-execution operations are newer than the pinned SDK
		// (v1.41.0); listed ahead from the API reference's operation list.
		same(apiAgentRuntime, "GetExecutionFlowSnapshot"),
		same(apiAgentRuntime, "GetFlowExecution"),
		same(apiAgentRuntime, "GetInvocationStep"),
		same(apiAgentRuntime, "GetSession"),
		same(apiAgentRuntime, "InvokeAgent"),
		same(apiAgentRuntime, "InvokeFlow"),
		same(apiAgentRuntime, "InvokeInlineAgent"),
		same(apiAgentRuntime, "ListFlowExecutionEvents"),
		same(apiAgentRuntime, "ListFlowExecutions"),
		same(apiAgentRuntime, "ListInvocationSteps"),
		same(apiAgentRuntime, "ListInvocations"),
		same(apiAgentRuntime, "ListSessions"),
		notData(apiAgentRuntime, "ListTagsForResource", tagging),
		same(apiAgentRuntime, "OptimizePrompt"),
		same(apiAgentRuntime, "PutInvocationStep"),
		// Rerank also needs bedrock:InvokeModel on the reranking model.
		same(apiAgentRuntime, "Rerank"),
		same(apiAgentRuntime, "Retrieve"),
		same(apiAgentRuntime, "RetrieveAndGenerate"),
		with(apiAgentRuntime, "RetrieveAndGenerateStream", "bedrock:RetrieveAndGenerate"),
		same(apiAgentRuntime, "StartFlowExecution"),
		same(apiAgentRuntime, "StopFlowExecution"),
		notData(apiAgentRuntime, "TagResource", tagging),
		notData(apiAgentRuntime, "UntagResource", tagging),
		same(apiAgentRuntime, "UpdateSession"),

		// Chat Completions, Responses and Messages on bedrock-runtime's
		// /openai/v1 and /anthropic/v1 paths are authorised as invocations;
		// stored (background) responses have their own actions.
		with(apiRuntimeHTTP, "ChatCompletions", actInvokeModel, actInvokeStream),
		with(apiRuntimeHTTP, "Responses", actInvokeModel, actInvokeStream),
		with(apiRuntimeHTTP, "GetResponse", "bedrock:GetInvoke"),
		with(apiRuntimeHTTP, "CancelResponse", "bedrock:CancelInvoke"),
		with(apiRuntimeHTTP, "DeleteResponse", "bedrock:DeleteInvoke"),
		// Any API with a Bedrock API key (permission-only action).
		with(apiRuntimeHTTP, "BearerToken", actCallWithBearer),

		// Batch inference reads prompts from S3 and writes the answers back.
		same(apiControl, "CreateModelInvocationJob"),

		// Mantle has its own service prefix: a deny on bedrock:* leaves it open.
		with(apiMantle, "Responses", actMantleInference),
		with(apiMantle, "ChatCompletions", actMantleInference),
		with(apiMantle, "Messages", actMantleInference),
		with(apiMantle, "BearerToken", actMantleBearer),

		// Claude Managed Agents (Anthropic's Bedrock-only APIs): they run
		// inference on the caller's behalf, so an app that could call them
		// directly would go around Warden.
		with(apiAnthropicBedrock, "ClaudeManagedAgents", actClaudeManagedAgents),
	}
}

// dataPlaneActions is every action of opActions, sorted: what the deny
// policy refuses to all but Warden.
func dataPlaneActions() []string {
	var out []string
	for _, o := range opActions() {
		out = append(out, o.actions...)
	}
	sort.Strings(out)
	return dedupe(out)
}

// roleGuardActions are the IAM actions that would let someone else become
// one of Warden's roles (create one under its path, trust themselves, pass
// it to a compute service they control) or change what it may do.
var roleGuardActions = [...]string{
	"iam:AttachRolePolicy", "iam:CreateRole", "iam:DeleteRole", "iam:DeleteRolePermissionsBoundary",
	"iam:DeleteRolePolicy", "iam:DetachRolePolicy", "iam:PassRole", "iam:PutRolePermissionsBoundary",
	"iam:PutRolePolicy", "iam:TagRole", "iam:UntagRole", "iam:UpdateAssumeRolePolicy", "iam:UpdateRole",
}

// controlPlaneReads are the control-plane reads Warden makes to resolve
// indirect model ids (authz/models.go); they go to the bedrock and
// bedrock-agent endpoints, not bedrock-runtime's.
var controlPlaneReads = [...]string{
	"bedrock:GetCustomModel", "bedrock:GetCustomModelDeployment", "bedrock:GetImportedModel",
	"bedrock:GetInferenceProfile", "bedrock:GetPrompt", "bedrock:GetPromptRouter",
	"bedrock:GetProvisionedModelThroughput",
}

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
	WardenRolePolicy   *iamPolicy `json:"warden_role_policy"`
}

type vpceOptions struct {
	principals []string
	admins     []string
	region     string
	account    string
	sourceVPCE []string
	indirect   bool
}

const vpceUsage = `  warden policy vpce-policy --config FILE --principal ARN [--principal ARN …]
        --admin-principal ARN [--admin-principal ARN …] [--region R] [--account A]
        [--source-vpce VPCE-ID …] [--indirect] [--only vpce|deny|role]
        emit the VPC endpoint policy for bedrock-runtime (only Warden's principals, only the
        allowed model and profile ARNs), the identity policy / SCP denying every Bedrock
        data-plane action to everyone else and guarding Warden's roles, and Warden's own
        role policy
`

func cmdPolicyVPCE(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("policy vpce-policy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "configuration file (YAML)")
	var principals, admins, vpces listFlag
	fs.Var(&principals, "principal", "ARN of a role Warden calls Bedrock as (repeatable; * and ? allowed, e.g. arn:aws:iam::A:role/warden/*)")
	fs.Var(&admins, "admin-principal", "ARN of the platform pipeline that alone may create and change Warden's roles (repeatable; required unless --only vpce|role)")
	region := fs.String("region", "", "region of the VPC endpoint (default: upstream.region)")
	account := fs.String("account", "", "account id in inference-profile ARNs (default: the principals' account, else *)")
	fs.Var(&vpces, "source-vpce", "Warden's own role may call bedrock-runtime only through this VPC endpoint id (repeatable)")
	indirect := fs.Bool("indirect", false, "allow the account's application inference profiles, prompts, prompt routers, provisioned, custom and imported models through the endpoint")
	only := fs.String("only", "", "print only one policy: vpce, deny or role")
	if err := parsePolicyFlags(fs, args, path); err != nil {
		return err
	}
	switch *only {
	case "", "vpce", "deny", "role":
	default:
		return fmt.Errorf("--only %q: want vpce, deny or role", *only)
	}
	if len(principals) == 0 {
		return errors.New("--principal is required (the ARN of the role Warden calls Bedrock as)")
	}
	for _, p := range principals {
		if err := checkPrincipalARN("--principal", p); err != nil {
			return err
		}
	}
	if len(admins) == 0 && (*only == "" || *only == "deny") {
		return errors.New("--admin-principal is required: the deny policy lets only it create or change Warden's roles (otherwise anyone with iam:CreateRole or iam:UpdateAssumeRolePolicy could become Warden)")
	}
	for _, p := range admins {
		if err := checkPrincipalARN("--admin-principal", p); err != nil {
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
	opts := vpceOptions{principals: principals, admins: admins, region: *region, account: *account, sourceVPCE: vpces, indirect: *indirect}
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
		WardenRolePolicy:   wardenRolePolicy(cfg.Apps, opts),
	}
	if len(admins) > 0 {
		out.DenyPolicy = denyPolicy(opts)
	}
	var v any = out
	switch *only {
	case "vpce":
		v = out.VPCEndpointPolicy
	case "deny":
		v = out.DenyPolicy
	case "role":
		v = out.WardenRolePolicy
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "%s\n", b)
	return err
}

var (
	partitionRE = regexp.MustCompile(`^aws(-[a-z]+)*$`)
	// IAM's path and name characters, plus the * and ? of ArnLike.
	rolePathRE = regexp.MustCompile(`^[A-Za-z0-9+=,.@_/*?-]{1,576}$`)
)

// checkPrincipalARN accepts an IAM role ARN in a named account (wildcards
// allowed in the path and name). Users are refused because anyone with
// iam:CreateAccessKey on one becomes it; a wildcard account, or a name that
// starts with a wildcard, would exempt roles anyone can create.
func checkPrincipalARN(flagName, p string) error {
	parts := strings.SplitN(p, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" || !partitionRE.MatchString(parts[1]) || parts[2] != "iam" || parts[3] != "" ||
		!strings.HasPrefix(parts[5], "role/") || !rolePathRE.MatchString(parts[5][len("role/"):]) {
		return fmt.Errorf("%s %q: want an IAM role ARN (arn:aws:iam::ACCOUNT:role/PATH/NAME)", flagName, p)
	}
	if len(parts[4]) != 12 || strings.Trim(parts[4], "0123456789") != "" {
		return fmt.Errorf("%s %q: the account must be a 12-digit id, not %q: a pattern would match roles of accounts anyone can open", flagName, p, parts[4])
	}
	if rest := parts[5][len("role/"):]; rest[0] == '*' || rest[0] == '?' {
		return fmt.Errorf("%s %q: a pattern must begin with a fixed path or name (role/warden/*), or it matches every role of the account", flagName, p)
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
	if !ok || policy.ScopeGeography(scope) == nil {
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
		if strings.HasPrefix(s, g[:i]) && policy.ScopeGeography(s) != nil {
			return true
		}
	}
	return false
}

// modelResources turns the apps' model globs into sorted, deduplicated ARN
// patterns; ["*"] when a glob can match any id.
func modelResources(apps []policy.AppConfig, opts vpceOptions) []string {
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
func asyncAllowed(apps []policy.AppConfig) bool {
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

// opAllowed reports whether some app may call the operation.
func opAllowed(apps []policy.AppConfig, op string) bool {
	for _, a := range apps {
		for _, o := range a.Allow.Operations {
			if o == op || o == "*" {
				return true
			}
		}
	}
	return false
}

// wardenStatements are the bedrock-runtime calls Warden makes: the invoke
// actions on the allowed models, ApplyGuardrail (its own guards and the
// apps'), and guardrail checks and async invocations when some app may use
// them. No Principal and no Condition: the callers add theirs.
func wardenStatements(apps []policy.AppConfig, opts vpceOptions) []iamStatement {
	models := modelResources(apps, opts)
	invoke := []string{actCountTokens, actInvokeModel, actInvokeStream}
	async := asyncAllowed(apps)
	if async {
		invoke = append(invoke, actStartAsyncInvoke)
	}
	var out []iamStatement
	if len(models) > 0 {
		out = append(out, iamStatement{Sid: "WardenInvokesAllowedModels", Effect: "Allow", Action: invoke, Resource: models})
	}
	out = append(out, iamStatement{
		Sid: "WardenAppliesGuardrails", Effect: "Allow", Action: []string{actApplyGuardrail},
		Resource: []string{"arn:aws:bedrock:*:" + opts.account + ":guardrail/*"},
	})
	if opAllowed(apps, "InvokeGuardrailChecks") {
		// Inline checks name no guardrail resource.
		out = append(out, iamStatement{
			Sid: "WardenRunsGuardrailChecks", Effect: "Allow", Action: []string{actGuardrailChecks}, Resource: []string{"*"},
		})
	}
	if async {
		out = append(out, iamStatement{
			Sid: "WardenAsyncInvocations", Effect: "Allow", Action: []string{actGetAsyncInvoke, actStartAsyncInvoke},
			Resource: []string{"arn:aws:bedrock:*:" + opts.account + ":async-invoke/*"},
		}, iamStatement{
			// ListAsyncInvokes supports no resource-level permission.
			Sid: "WardenListsAsyncInvocations", Effect: "Allow", Action: []string{actListAsyncInvokes}, Resource: []string{"*"},
		})
	}
	return out
}

func vpcEndpointPolicy(apps []policy.AppConfig, opts vpceOptions) *iamPolicy {
	principal, cond := principalMatch(opts.principals)
	p := &iamPolicy{Version: "2012-10-17"}
	for _, s := range wardenStatements(apps, opts) {
		s.Principal, s.Condition = principal, cond
		p.Statement = append(p.Statement, s)
	}
	return p
}

// wardenRolePolicy is the identity policy of Warden's own roles: the
// bedrock-runtime calls of wardenStatements, through the VPC endpoint when
// --source-vpce names it, and the control-plane reads that resolve indirect
// model ids (other endpoints, so no aws:SourceVpce on them).
func wardenRolePolicy(apps []policy.AppConfig, opts vpceOptions) *iamPolicy {
	p := &iamPolicy{Version: "2012-10-17"}
	var cond map[string]map[string]any
	if len(opts.sourceVPCE) > 0 {
		vpces := append([]string(nil), opts.sourceVPCE...)
		sort.Strings(vpces)
		cond = map[string]map[string]any{"StringEquals": {"aws:SourceVpce": dedupe(vpces)}}
	}
	for _, s := range wardenStatements(apps, opts) {
		s.Condition = cond
		p.Statement = append(p.Statement, s)
	}
	if mantleAllowed(apps) {
		// bedrock-mantle is its own service and endpoint (not the
		// bedrock-runtime VPC endpoint, so no aws:SourceVpce), and the model
		// is in the body: the apps' allow.models stays Warden's job.
		p.Statement = append(p.Statement, iamStatement{
			Sid: "WardenCallsBedrockMantle", Effect: "Allow", Action: []string{actMantleInference}, Resource: []string{"*"},
		})
	}
	if managedAgentsAllowed(apps) {
		// bedrock.REGION.amazonaws.com, not the bedrock-runtime endpoint: no
		// aws:SourceVpce. Only apps whose policy names these operations
		// reach them ("*" does not include them).
		p.Statement = append(p.Statement, iamStatement{
			Sid: "WardenCallsClaudeManagedAgents", Effect: "Allow", Action: []string{actClaudeManagedAgents}, Resource: []string{"*"},
		})
	}
	p.Statement = append(p.Statement, iamStatement{
		Sid: "WardenResolvesIndirectModelIds", Effect: "Allow", Action: controlPlaneReads[:],
		Resource: []string{"*"},
	})
	return p
}

// mantleAllowed reports whether some app may call a bedrock-mantle
// operation (by name or "*").
func mantleAllowed(apps []policy.AppConfig) bool {
	for _, op := range []string{"MantleChatCompletions", "MantleResponses", "MantleMessages"} {
		if opAllowed(apps, op) {
			return true
		}
	}
	return false
}

// managedAgentsAllowed reports whether some app names one of Anthropic's
// Bedrock-only operations ("*" does not include them).
func managedAgentsAllowed(apps []policy.AppConfig) bool {
	for _, a := range apps {
		for _, o := range a.Allow.Operations {
			if o == "AnthropicAgents" || o == "AnthropicSessions" || o == "AnthropicMemoryStores" {
				return true
			}
		}
	}
	return false
}

// denyPolicy goes on app roles as a permissions boundary / identity policy,
// or in an SCP for the accounts. It denies every Bedrock data-plane action
// (dataPlaneActions: bedrock-runtime, agent runtime, batch, bearer tokens,
// bedrock-mantle) to all but Warden's principals; it denies the IAM actions
// that could make another principal one of Warden's roles to all but the
// admin principals; and, with --source-vpce, it denies Warden's principals
// the bedrock-runtime calls made outside that endpoint.
func denyPolicy(opts vpceOptions) *iamPolicy {
	wardens := append([]string(nil), opts.principals...)
	sort.Strings(wardens)
	wardens = dedupe(wardens)
	admins := append([]string(nil), opts.admins...)
	sort.Strings(admins)
	admins = dedupe(admins)
	var bedrockActs, mantleActs []string
	for _, a := range dataPlaneActions() {
		if strings.HasPrefix(a, "bedrock-mantle:") {
			mantleActs = append(mantleActs, a)
		} else {
			bedrockActs = append(bedrockActs, a)
		}
	}
	notWarden := map[string]map[string]any{"ArnNotLike": {"aws:PrincipalArn": wardens}}
	p := &iamPolicy{Version: "2012-10-17", Statement: []iamStatement{{
		Sid: "DenyBedrockDataPlaneExceptWarden", Effect: "Deny",
		Action: bedrockActs, Resource: []string{"*"}, Condition: notWarden,
	}, {
		Sid: "DenyBedrockMantleExceptWarden", Effect: "Deny",
		Action: mantleActs, Resource: []string{"*"}, Condition: notWarden,
	}, {
		// The exemption above names roles; only the platform may make them.
		Sid: "DenyChangingWardenRolesExceptAdmins", Effect: "Deny",
		Action: roleGuardActions[:], Resource: wardens,
		Condition: map[string]map[string]any{"ArnNotLike": {"aws:PrincipalArn": admins}},
	}}}
	if len(opts.sourceVPCE) > 0 {
		vpces := append([]string(nil), opts.sourceVPCE...)
		sort.Strings(vpces)
		p.Statement = append(p.Statement, iamStatement{
			Sid:    "DenyWardenOutsideItsEndpoint",
			Effect: "Deny",
			Action: []string{actApplyGuardrail, actCountTokens, actGetAsyncInvoke, actGuardrailChecks, actInvokeModel, actInvokeBidi,
				actInvokeStream, actListAsyncInvokes, actStartAsyncInvoke},
			Resource: []string{"*"},
			Condition: map[string]map[string]any{
				"ArnLike":         {"aws:PrincipalArn": wardens},
				"StringNotEquals": {"aws:SourceVpce": dedupe(vpces)},
			},
		})
	}
	return p
}
