package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/warden-egress/warden/authz/identity"
	"github.com/warden-egress/warden/authz/policy"

	"gopkg.in/yaml.v3"

	"github.com/warden-egress/warden/audit"
	"github.com/warden-egress/warden/bedrock"
	"github.com/warden-egress/warden/config"
	"github.com/warden-egress/warden/proxy"
)

const (
	policyValidateUsage = `  warden policy validate [--strict] [--files] --config FILE
        check a configuration as serve would (keys, values, the region, the compiled policy)
        without touching the network; with --files also load the files it names (TLS and CA
        keys, the master key, kubeconfigs, the Redis password) as serve does at start, where
        Warden will run; warnings (unreachable apps …) fail only with --strict
`
	policyTestUsage = `  warden policy test --config FILE --cases CASES.yaml [-v]
  warden policy test --policy FILE [--config FILE] --cases CASES.yaml [-v]
        run policy test cases; exit 1 if any fails. --policy is a bundle's policy file (apps, deny, mode,
        guards), tested as policy sign validates it: on --config's other keys, or on a minimal config
`
	policyExplainUsage = `  warden policy explain --config FILE|--policy FILE --tag KEY=VALUE[:strong] … --op OPERATION [--model ID]
        [--foundation ID …] [--region R …] [--unresolved] [--s3-output URI]
        show which app selects the identity, each selector's result, the decision and its rule
`
	policySchemaUsage = `  warden policy schema
        print the configuration file's JSON Schema (also deploy/warden.schema.json)
`
	policyUsage = "usage:\n" + policyValidateUsage + policyTestUsage + policyExplainUsage + policySchemaUsage + vpceUsage + identityRolesUsage +
		policySignUsage + policyVerifyUsage + policyPublishUsage
)

func cmdPolicy(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, policyUsage)
		return errors.New("missing subcommand")
	}
	switch args[0] {
	case "validate":
		return cmdPolicyValidate(ctx, args[1:], stdout, stderr)
	case "test":
		return cmdPolicyTest(args[1:], stdout, stderr)
	case "explain":
		return cmdPolicyExplain(args[1:], stdout, stderr)
	case "vpce-policy":
		return cmdPolicyVPCE(args[1:], stdout, stderr)
	case "identity-roles":
		return cmdPolicyIdentityRoles(args[1:], stdout, stderr)
	case "sign":
		return cmdPolicySign(args[1:], stdout, stderr)
	case "verify":
		return cmdPolicyVerify(args[1:], stdout, stderr)
	case "publish":
		return cmdPolicyPublish(ctx, args[1:], stdout, stderr)
	case "schema":
		if len(args) > 1 {
			return usageErrorf("policy schema: unexpected arguments %q", args[1:])
		}
		_, err := stdout.Write(config.JSONSchema())
		return err
	case "help", "-h", "--help":
		fmt.Fprint(stdout, policyUsage)
		return nil
	}
	fmt.Fprint(stderr, policyUsage)
	return usageErrorf("unknown subcommand %q", args[0])
}

// loadPolicy reads, validates and compiles a config file; its errors are
// file:line:column: message lines, as validate prints them.
func loadPolicy(path string) (*config.Config, *policy.Policy, error) {
	if path == "" {
		return nil, nil, errors.New("--config is required")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("config: %w", err)
	}
	cfg, err := config.ParseConfig(data)
	if err != nil {
		return nil, nil, errors.New(strings.Join(config.Diagnostics(path, data, err), "\n"))
	}
	p, err := policy.New(cfg.Policy())
	if err != nil {
		return nil, nil, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, p, nil
}

// loadTestPolicy is loadPolicy for test and explain: with policyPath (a
// bundle's policy file, as `policy sign` takes it) the policy comes from
// that file, laid over configPath's other keys or over the minimal config
// sign validates against; without it, from configPath.
func loadTestPolicy(configPath, policyPath string) (*policy.Policy, error) {
	if policyPath == "" {
		_, p, err := loadPolicy(configPath)
		return p, err
	}
	data, err := os.ReadFile(policyPath)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	cfg, err := bundlePolicyConfig(policyPath, data, configPath)
	if err != nil {
		return nil, err
	}
	p, err := policy.New(cfg.Policy())
	if err != nil {
		return nil, fmt.Errorf("policy %s: %w", policyPath, err)
	}
	return p, nil
}

// configFlag accepts the file as --config or as the first argument.
func parsePolicyFlags(fs *flag.FlagSet, args []string, path *string, rest ...*string) error {
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	pos := fs.Args()
	if *path == "" && len(pos) > 0 {
		*path, pos = pos[0], pos[1:]
	}
	for _, r := range rest {
		if *r == "" && len(pos) > 0 {
			*r, pos = pos[0], pos[1:]
		}
	}
	if len(pos) > 0 {
		return usageErrorf("unexpected arguments %q", pos)
	}
	return nil
}

// serveChecks is what serve refuses of a file beyond config's own
// validation, without touching the network: the region, the compiled policy
// and guards, the upstream; with files, the files it reads at start too.
// Through config.ParseConfigChecked its problems come in the same pass as
// the file's others; of a file with other problems only the region is
// checked (the rest would say them again).
func serveChecks(ctx context.Context, files bool) config.Check {
	return func(cfg *config.Config, valid bool) error {
		if !valid {
			return proxy.CheckRegion(ctx, cfg)
		}
		err := proxy.CheckConfig(ctx, cfg)
		if files {
			err = errors.Join(err, proxy.CheckFiles(cfg))
		}
		return err
	}
}

func cmdPolicyValidate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("policy validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "configuration file (YAML)")
	strict := fs.Bool("strict", false, "treat warnings as errors")
	files := fs.Bool("files", false, "also load the files the configuration names, as serve does at start (run it where Warden runs)")
	if err := parsePolicyFlags(fs, args, path); err != nil {
		return err
	}
	if *path == "" {
		return errors.New("--config is required")
	}
	data, err := os.ReadFile(*path)
	if err != nil {
		return err
	}
	cfg, err := config.ParseConfigChecked(data, serveChecks(ctx, *files))
	if err != nil {
		// One error a line, file:line:column: message, so editors and CI
		// annotations can jump to it.
		diags := config.Diagnostics(*path, data, err)
		for _, line := range diags {
			fmt.Fprintln(stderr, line)
		}
		noun := "errors"
		if len(diags) == 1 {
			noun = "error"
		}
		return fmt.Errorf("%s: invalid (%d %s)", *path, len(diags), noun)
	}
	warnings := config.Warnings(cfg)
	for _, w := range warnings {
		fmt.Fprintf(stdout, "%s: warning: %s\n", *path, w)
	}
	if *strict && len(warnings) > 0 {
		return fmt.Errorf("%s: %d warning(s) with --strict", *path, len(warnings))
	}
	fmt.Fprintf(stdout, "%s: valid (%d apps, %d warnings)\n", *path, len(cfg.Apps), len(warnings))
	return nil
}

// policyCases is the file `warden policy test` reads.
type policyCases struct {
	Cases []policyCase `yaml:"cases"`
}

// policyCase is one call and the decision the policy must reach.
type policyCase struct {
	Name       string            `yaml:"name"`
	Tags       map[string]string `yaml:"tags"`        // weak tags (labels, resource tags, static tags)
	StrongTags map[string]string `yaml:"strong_tags"` // platform-set tags
	Operation  string            `yaml:"operation"`
	Model      string            `yaml:"model"`
	// Foundations are the models behind an indirect model id, as the
	// control plane would resolve them; Resolved defaults to true when
	// they are listed (set it for an imported model, which has none).
	Foundations []string `yaml:"foundations"`
	Resolved    *bool    `yaml:"resolved"`
	Regions     []string `yaml:"regions"` // regions of the foundation-model ARNs resolution named
	S3OutputURI string   `yaml:"s3_output_uri"`
	// Method, Path (with any query after '?') and Body are an agent-runtime
	// request (InvokeAgent, Retrieve, …), read as the proxy reads it;
	// Foundations then resolve the indirect models its body names.
	Method string `yaml:"method"`
	Path   string `yaml:"path"`
	Body   string `yaml:"body"`
	agent  *policy.AgentCall

	Expect string  `yaml:"expect"` // allow | deny | dry-run-deny
	App    *string `yaml:"app"`    // "" = no app selects the caller
	Rule   string  `yaml:"rule"`
	Reason string  `yaml:"reason"` // a substring of the reason
	Line   int     `yaml:"-"`
}

func loadCases(path string) ([]policyCase, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var pc policyCases
	if err := config.DecodeStrict(data, &pc); err != nil {
		return nil, errors.New(strings.Join(config.Diagnostics(path, data, err), "\n"))
	}
	if len(root.Content) > 0 && root.Content[0].Kind == yaml.MappingNode {
		m := root.Content[0]
		for i := 0; i+1 < len(m.Content); i += 2 {
			if m.Content[i].Value == "cases" {
				for j, n := range m.Content[i+1].Content {
					if j < len(pc.Cases) {
						pc.Cases[j].Line = n.Line
					}
				}
			}
		}
	}
	var errs []error
	for i, c := range pc.Cases {
		where := fmt.Sprintf("%s:%d: cases[%d]", path, c.Line, i)
		switch c.Expect {
		case audit.DecisionAllow, audit.DecisionDeny, audit.DecisionDryRunDeny:
		default:
			errs = append(errs, fmt.Errorf("%s: expect must be allow, deny or dry-run-deny, got %q", where, c.Expect))
		}
		if c.Operation == "" {
			errs = append(errs, fmt.Errorf("%s: operation is required", where))
		}
		if c.Model != "" {
			if _, err := bedrock.ParseModelID(c.Model); err != nil {
				errs = append(errs, fmt.Errorf("%s: model: %v", where, err))
			}
		}
		if bedrock.Operation(c.Operation).AgentRuntime() {
			ac, err := agentCall(c.Operation, c.Method, c.Path, c.Body, c.Foundations, c.Regions)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %v", where, err))
			}
			pc.Cases[i].agent = ac
		} else if c.Path != "" || c.Body != "" || c.Method != "" {
			errs = append(errs, fmt.Errorf("%s: method, path and body are for agent-runtime operations only", where))
		}
	}
	if len(pc.Cases) == 0 {
		errs = append(errs, fmt.Errorf("%s: no cases", path))
	}
	return pc.Cases, errors.Join(errs...)
}

func (c *policyCase) identity() identity.Identity {
	id := identity.Identity{Source: "policy-test", Tags: map[string]identity.Tag{}}
	for k, v := range c.Tags {
		id.Tags[k] = identity.WeakTag("policy-test", v)
	}
	for k, v := range c.StrongTags {
		id.Tags[k] = identity.StrongTag("policy-test", v)
	}
	return id
}

func (c *policyCase) call() policy.Call {
	call := policy.Call{Op: bedrock.Operation(c.Operation), Foundations: c.Foundations, Regions: c.Regions, S3OutputURI: c.S3OutputURI, Agent: c.agent}
	call.Resolved = c.Foundations != nil
	if c.Resolved != nil {
		call.Resolved = *c.Resolved
	}
	if c.Model != "" {
		m, _ := bedrock.ParseModelID(c.Model) // checked by loadCases
		call.Model = &m
	}
	return call
}

// decisionName is the decision as the audit record spells it.
func decisionName(d policy.Decision) string {
	switch {
	case d.Allow:
		return audit.DecisionAllow
	case d.DryRun:
		return audit.DecisionDryRunDeny
	}
	return audit.DecisionDeny
}

func cmdPolicyTest(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("policy test", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "configuration file (YAML)")
	polPath := fs.String("policy", "", "a bundle's policy file (apps, deny, mode, guards), instead of --config's policy")
	casesPath := fs.String("cases", "", "test cases (YAML)")
	verbose := fs.Bool("v", false, "print each decision, passing cases included")
	if err := parsePolicyFlags(fs, args, path, casesPath); err != nil {
		return err
	}
	if *casesPath == "" {
		return errors.New("--cases is required")
	}
	p, err := loadTestPolicy(*path, *polPath)
	if err != nil {
		return err
	}
	cases, err := loadCases(*casesPath)
	if err != nil {
		return err
	}
	failed := 0
	for i := range cases {
		c := &cases[i]
		d := p.Decide(c.identity(), c.call())
		got := decisionName(d)
		var why []string
		if got != c.Expect {
			why = append(why, fmt.Sprintf("decision %s, want %s", got, c.Expect))
		}
		if c.App != nil && d.App != *c.App {
			why = append(why, fmt.Sprintf("app %q, want %q", d.App, *c.App))
		}
		if c.Rule != "" && d.Rule != c.Rule {
			why = append(why, fmt.Sprintf("rule %s, want %s", d.Rule, c.Rule))
		}
		if c.Reason != "" && !strings.Contains(d.Reason, c.Reason) {
			why = append(why, fmt.Sprintf("reason does not contain %q", c.Reason))
		}
		name := c.Name
		if name == "" {
			name = fmt.Sprintf("cases[%d]", i)
		}
		if len(why) == 0 {
			fmt.Fprintf(stdout, "PASS  %s\n", name)
			if *verbose {
				fmt.Fprintf(stdout, "      %s app=%q rule=%s: %s\n", got, d.App, d.Rule, d.Reason)
			}
			continue
		}
		failed++
		fmt.Fprintf(stdout, "FAIL  %s (%s:%d)\n", name, *casesPath, c.Line)
		for _, w := range why {
			fmt.Fprintf(stdout, "      %s\n", w)
		}
		fmt.Fprintf(stdout, "      got %s app=%q rule=%s: %s\n", got, d.App, d.Rule, d.Reason)
	}
	fmt.Fprintln(stdout, "--------------------------------------------------------------------------------")
	fmt.Fprintf(stdout, "PASS: %d/%d\n", len(cases)-failed, len(cases))
	if failed > 0 {
		fmt.Fprintf(stdout, "FAIL: %d/%d\n", failed, len(cases))
		return fmt.Errorf("%d of %d cases failed", failed, len(cases))
	}
	return nil
}

// listFlag collects a repeated flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

// parseTagFlag reads KEY=VALUE[:strong|:weak]; weak is the default.
func parseTagFlag(s string) (string, identity.Tag, error) {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return "", identity.Tag{}, fmt.Errorf("--tag %q: want KEY=VALUE[:strong]", s)
	}
	if rest, ok := strings.CutSuffix(v, ":strong"); ok {
		return k, identity.StrongTag("explain", rest), nil
	}
	v = strings.TrimSuffix(v, ":weak")
	return k, identity.WeakTag("explain", v), nil
}

func cmdPolicyExplain(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("policy explain", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "configuration file (YAML)")
	var tagFlags, foundations, regions listFlag
	fs.Var(&tagFlags, "tag", "identity tag KEY=VALUE, weak unless suffixed :strong (repeatable)")
	op := fs.String("op", "", "operation (Converse, InvokeModel, …)")
	fs.StringVar(op, "operation", "", "same as --op")
	model := fs.String("model", "", "model id as the caller sends it")
	fs.Var(&foundations, "foundation", "a foundation model behind an indirect model id (repeatable)")
	fs.Var(&regions, "region", "a region the resolved foundation-model ARNs name (repeatable)")
	unresolved := fs.Bool("unresolved", false, "the indirect model id could not be resolved")
	s3 := fs.String("s3-output", "", "StartAsyncInvoke output s3Uri")
	polPath := fs.String("policy", "", "a bundle's policy file (apps, deny, mode, guards), instead of --config's policy")
	if err := parsePolicyFlags(fs, args, path); err != nil {
		return err
	}
	if *op == "" {
		return errors.New("--op is required")
	}
	p, err := loadTestPolicy(*path, *polPath)
	if err != nil {
		return err
	}
	id := identity.Identity{Source: "explain", Tags: map[string]identity.Tag{}}
	for _, t := range tagFlags {
		k, tag, err := parseTagFlag(t)
		if err != nil {
			return err
		}
		id.Tags[k] = tag
	}
	call := policy.Call{Op: bedrock.Operation(*op), Foundations: foundations, Regions: regions, S3OutputURI: *s3}
	var m bedrock.ModelID
	if *model != "" {
		if m, err = bedrock.ParseModelID(*model); err != nil {
			return fmt.Errorf("--model: %v", err)
		}
		call.Model = &m
		call.Resolved = m.Indirect() && !*unresolved
	}
	writeExplanation(stdout, id, call, p.Explain(id, call))
	return nil
}

func writeExplanation(w io.Writer, id identity.Identity, call policy.Call, ex policy.Explanation) {
	model := "-"
	if call.Model != nil {
		model = call.Model.Raw
	}
	fmt.Fprintf(w, "call      %s %s\n", call.Op, model)
	if m := call.Model; m != nil {
		fmt.Fprintf(w, "model     %s\n", describeModel(m, call))
	}
	if call.S3OutputURI != "" {
		fmt.Fprintf(w, "output    %s\n", call.S3OutputURI)
	}
	keys := make([]string, 0, len(id.Tags))
	for k := range id.Tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Fprintf(w, "identity ")
	if len(keys) == 0 {
		fmt.Fprint(w, " (no tags)")
	}
	for _, k := range keys {
		strength := "weak"
		if id.Tags[k].Strong {
			strength = "strong"
		}
		fmt.Fprintf(w, " %s=%s (%s)", k, id.Tags[k].Value, strength)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w)
	selected := false
	for _, a := range ex.Apps {
		state := "not selected"
		if a.Selected {
			state, selected = "SELECTED", true
		}
		extra := ""
		if a.AllowWeak {
			extra = ", allow_weak_identity"
		}
		fmt.Fprintf(w, "apps[%d] %s (line %d, %s%s): %s\n", a.Index, a.Name, a.Line, a.Mode, extra, state)
		for _, s := range a.Selectors {
			if s.OK {
				fmt.Fprintf(w, "  ok    %s\n", s.Selector)
				continue
			}
			fmt.Fprintf(w, "  FAIL  %-40s %s\n", s.Selector, s.Detail)
		}
	}
	if !selected && len(ex.Apps) > 0 {
		fmt.Fprintln(w, "no app selects this identity")
	}
	if len(ex.Apps) > 0 {
		fmt.Fprintln(w)
	}
	d := ex.Decision
	decision := decisionName(d)
	if d.DryRun {
		decision += " (the app runs in dry-run mode: the call is forwarded and recorded)"
	}
	app := d.App
	if app == "" {
		// A decision taken before the app's rules (an unsupported
		// operation) still names the app that selects the caller.
		app = "-"
		for _, a := range ex.Apps {
			if a.Selected {
				app = a.Name
			}
		}
	}
	fmt.Fprintf(w, "decision  %s\n", decision)
	fmt.Fprintf(w, "app       %s\n", app)
	fmt.Fprintf(w, "rule      %s\n", d.Rule)
	fmt.Fprintf(w, "reason    %s\n", d.Reason)
}

func describeModel(m *bedrock.ModelID, call policy.Call) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s, canonical %s", m.Kind, m.Canonical)
	if m.Region != "" {
		fmt.Fprintf(&b, ", region %s", m.Region)
	}
	if m.Scope != "" {
		fmt.Fprintf(&b, ", scope %s (served in %s), base model %s", m.Scope, strings.Join(policy.ScopeGeography(m.Scope), ", "), m.Foundation)
	}
	if m.Indirect() && m.Kind != bedrock.KindSageMakerEndpoint {
		switch {
		case !call.Resolved:
			b.WriteString(", not resolved")
		case len(call.Foundations) == 0:
			b.WriteString(", resolves to no foundation model")
		default:
			fmt.Fprintf(&b, ", resolves to %s", strings.Join(call.Foundations, ", "))
		}
		if len(call.Regions) > 0 {
			fmt.Fprintf(&b, " in %s", strings.Join(call.Regions, ", "))
		}
	}
	return b.String()
}
