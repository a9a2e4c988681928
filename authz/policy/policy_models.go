package policy

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/warden-egress/warden/authz/identity"
	"github.com/warden-egress/warden/bedrock"
)

// scopeGeography maps a system inference profile's scope to the regions it
// may route a call to, as region patterns ("eu-*" is every region starting
// "eu-"). These are the geographies AWS documents for cross-region
// inference; a profile is allowed by allow.regions only when every region
// of its geography is.
var scopeGeography = map[string][]string{
	"us":     {"us-*"}, // commercial US regions (us-gov-* is another partition)
	"eu":     {"eu-*"},
	"apac":   {"ap-*"},
	"jp":     {"ap-northeast-1", "ap-northeast-3"}, // Tokyo, Osaka
	"au":     {"ap-southeast-2", "ap-southeast-4"}, // Sydney, Melbourne
	"ca":     {"ca-*"},
	"us-gov": {"us-gov-*"},
	"global": {"*"}, // any commercial region
}

// ScopeGeography returns the region patterns a system inference profile
// scope routes to (nil for an unknown scope).
func ScopeGeography(scope string) []string { return scopeGeography[scope] }

func profileScopes() []string {
	out := make([]string, 0, len(scopeGeography))
	for s := range scopeGeography {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// regionPatternCovers reports whether the allowed pattern e covers every
// region the pattern g names (both "*", "prefix*" or a literal region).
func regionPatternCovers(e, g string) bool {
	if e == "*" {
		return true
	}
	ep, eStar := strings.CutSuffix(e, "*")
	gp, gStar := strings.CutSuffix(g, "*")
	if gStar {
		return eStar && strings.HasPrefix(gp, ep)
	}
	if eStar {
		return strings.HasPrefix(gp, ep)
	}
	return e == g
}

func (a *app) regionAllowed(region string) bool {
	if len(a.regions) == 0 {
		return true
	}
	for _, e := range a.regions {
		if regionPatternCovers(e, region) {
			return true
		}
	}
	return false
}

func (a *app) geographyAllowed(scope string) bool {
	if len(a.regions) == 0 {
		return true
	}
	for _, g := range scopeGeography[scope] {
		if !a.regionAllowed(g) {
			return false
		}
	}
	return true
}

func (a *app) scopeListed(scope string) bool {
	for _, s := range a.scopes {
		if s == scope {
			return true
		}
	}
	return false
}

func (a *app) globModel(s string) bool {
	for _, g := range a.models {
		if Glob(g, s) {
			return true
		}
	}
	return false
}

// verdict is the outcome of one allow check: ok, or which field denied and
// why (a fragment naming only this app's own rules).
type verdict struct {
	field string // "allow.models", "allow.regions", …; "" when allowed
	why   string
}

var allowed = verdict{}

func deny(field, format string, args ...any) verdict {
	return verdict{field: field, why: fmt.Sprintf(format, args...)}
}

// checkModel decides whether the app allows the call's model.
func (a *app) checkModel(m *bedrock.ModelID, call *Call) verdict {
	if !m.Indirect() {
		return a.checkDirect(m, "")
	}
	if m.Kind == bedrock.KindSageMakerEndpoint {
		// The endpoint ARN hides no Bedrock model: it is matched as itself.
		return a.checkSelf(m)
	}
	if m.Repointable() && !a.acceptsUnpinned(m) {
		return deny("allow.unpinned_models", "%s", unpinnedWhy(m))
	}
	if !call.Resolved {
		return deny("model-resolution", "the %s could not be resolved to the foundation model(s) behind it", kindName(m.Kind))
	}
	if m.Region != "" && !a.regionAllowed(m.Region) {
		return deny("allow.regions", "region %s is not in allow.regions", m.Region)
	}
	if len(call.Foundations) == 0 {
		if m.Kind == bedrock.KindImportedModel {
			// An imported model has no foundation model: its ARN is the model.
			return a.checkSelf(m)
		}
		return deny("model-resolution", "the %s resolved to no foundation model", kindName(m.Kind))
	}
	for _, r := range call.Regions {
		if !a.regionAllowed(r) {
			return deny("allow.regions", "it may be served in region %s, which is not in allow.regions", r)
		}
	}
	for _, f := range call.Foundations {
		fm, err := bedrock.ParseModelID(f)
		if err == nil && fm.Kind == bedrock.KindImportedModel {
			// An imported model has no foundation model: its ARN is the model.
			if v := a.checkSelf(&fm); v.field != "" {
				if v.field == "allow.models" {
					return deny("allow.models", "it resolves to %s, which is not in allow.models", fm.Canonical)
				}
				return v
			}
			continue
		}
		if err != nil || fm.Indirect() {
			return deny("model-resolution", "the %s resolved to %q, which is not a foundation model id", kindName(m.Kind), f)
		}
		if v := a.checkDirect(&fm, m.Raw); v.field != "" {
			return v
		}
	}
	return allowed
}

// acceptsUnpinned reports whether the app lists the re-pointable id m in
// allow.unpinned_models.
func (a *app) acceptsUnpinned(m *bedrock.ModelID) bool {
	for _, g := range a.unpinned {
		if Glob(g, m.Canonical) {
			return true
		}
	}
	return false
}

// unpinnedWhy says why a re-pointable id is refused and how to pin it.
func unpinnedWhy(m *bedrock.ModelID) string {
	return fmt.Sprintf("a prompt without a version runs its DRAFT, which whoever may call bedrock:UpdatePrompt can re-point "+
		"to another model after Warden checked it; pin a version: create one with CreatePromptVersion and call the prompt "+
		"with it appended (%s:1 for version 1), or list the prompt in the app's allow.unpinned_models to accept the DRAFT", m.Raw)
}

// Resolves reports whether a call by id on the indirect model m is worth a
// control-plane lookup: some app selects the caller and that app does not
// refuse m outright as re-pointable. Lookups for anything else would spend
// the control plane's quota on calls the policy denies anyway.
func (p *Policy) Resolves(id identity.Identity, m *bedrock.ModelID) bool {
	i := p.match(id)
	if i < 0 {
		return false
	}
	return !m.Repointable() || p.apps[i].acceptsUnpinned(m)
}

// checkSelf matches an id with no foundation model behind it by its own ARN.
func (a *app) checkSelf(m *bedrock.ModelID) verdict {
	if !a.globModel(m.Canonical) {
		return deny("allow.models", "model not in allow.models")
	}
	if m.Region != "" && !a.regionAllowed(m.Region) {
		return deny("allow.regions", "region %s is not in allow.regions", m.Region)
	}
	return allowed
}

// checkDirect matches a foundation model or system inference profile;
// behind names the indirect id it was resolved from ("" if none).
func (a *app) checkDirect(m *bedrock.ModelID, behind string) verdict {
	if m.Kind != bedrock.KindInferenceProfile {
		if !a.globModel(m.Canonical) {
			return denyModel(m, behind)
		}
		if m.Region != "" && !a.regionAllowed(m.Region) {
			return deny("allow.regions", "region %s is not in allow.regions", m.Region)
		}
		return allowed
	}
	scope := m.Scope
	listed := a.scopeListed(scope)
	if !a.globModel(m.Canonical) && !(listed && a.globModel(m.Foundation)) {
		if len(a.scopes) > 0 && !listed && a.globModel(m.Foundation) {
			return deny("allow.profile_scopes", "inference profile scope %s is not in allow.profile_scopes", scope)
		}
		return denyModel(m, behind)
	}
	if scope == "global" && !listed {
		return deny("allow.profile_scopes", "global inference profiles may run in any region and must be listed in allow.profile_scopes")
	}
	if len(a.scopes) > 0 && !listed {
		return deny("allow.profile_scopes", "inference profile scope %s is not in allow.profile_scopes", scope)
	}
	if !a.geographyAllowed(scope) {
		return deny("allow.regions", "inference profile scope %s may be served in %s, not all of which is in allow.regions",
			scope, strings.Join(scopeGeography[scope], ", "))
	}
	if m.Region != "" && !a.regionAllowed(m.Region) {
		return deny("allow.regions", "region %s is not in allow.regions", m.Region)
	}
	return allowed
}

func denyModel(m *bedrock.ModelID, behind string) verdict {
	if behind != "" {
		return deny("allow.models", "it resolves to %s, which is not in allow.models", m.Canonical)
	}
	return deny("allow.models", "model not in allow.models")
}

// checkAsyncOutput allows a StartAsyncInvoke output URI under one of the
// app's prefixes.
func (a *app) checkAsyncOutput(uri string) verdict {
	if len(a.prefixes) == 0 {
		return deny("allow.async_output_prefixes", "StartAsyncInvoke needs allow.async_output_prefixes")
	}
	if uri == "" {
		return deny("allow.async_output_prefixes", "the StartAsyncInvoke output s3Uri is missing")
	}
	if err := validS3URI(uri); err != nil {
		return deny("allow.async_output_prefixes", "the StartAsyncInvoke output s3Uri is not accepted: %v", err)
	}
	for _, p := range a.prefixes {
		if S3Under(p, uri) {
			return allowed
		}
	}
	return deny("allow.async_output_prefixes", "output location %s is not under allow.async_output_prefixes", uri)
}

// S3Under reports whether uri is prefix (which ends in "/") or lies under it.
// Both must already be valid (validS3URI).
func S3Under(prefix, uri string) bool {
	return uri == strings.TrimSuffix(prefix, "/") || strings.HasPrefix(uri, prefix)
}

// validS3URI accepts s3://bucket[/key] with a plausible bucket name and a
// key free of dot segments, empty segments, percent-encoding, backslashes,
// whitespace and control characters: anything Bedrock or S3 might read
// differently from a plain prefix comparison is refused.
func validS3URI(u string) error {
	rest, ok := strings.CutPrefix(u, "s3://")
	if !ok {
		return errors.New("not an s3:// URI")
	}
	bucket, key, _ := strings.Cut(rest, "/")
	if len(bucket) < 3 || len(bucket) > 63 {
		return errors.New("bucket name must be 3-63 characters")
	}
	for i := 0; i < len(bucket); i++ {
		c := bucket[i]
		if !(isLowerAlnumByte(c) || c == '-' || c == '.') {
			return fmt.Errorf("bucket name %q has a character other than a-z, 0-9, '-' and '.'", bucket)
		}
	}
	if strings.Contains(bucket, "..") {
		return errors.New("bucket name contains ..")
	}
	seg := 0 // start of the current key segment
	for i := 0; i <= len(key); i++ {
		if i < len(key) {
			c := key[i]
			if c <= ' ' || c >= 0x7f || c == '%' || c == '\\' || c == '?' || c == '#' {
				return fmt.Errorf("key contains %q (only printable ASCII without %%, \\, ? and # is accepted)", string(c))
			}
			if c != '/' {
				continue
			}
		} else if seg == i {
			break // the key is empty or ends in '/'
		}
		switch key[seg:i] {
		case "":
			return errors.New("key has an empty segment (//)")
		case ".", "..":
			return fmt.Errorf("key has a %q segment", key[seg:i])
		}
		seg = i + 1
	}
	return nil
}

func validS3Prefix(p string) error {
	if err := validS3URI(p); err != nil {
		return err
	}
	return nil
}

// normaliseS3Prefix makes a prefix end at a '/' boundary.
func normaliseS3Prefix(p string) string {
	if strings.HasSuffix(p, "/") {
		return p
	}
	return p + "/"
}

// kindName spells a model kind for a message ("application inference profile").
func kindName(k bedrock.ModelKind) string { return strings.ReplaceAll(string(k), "-", " ") }
