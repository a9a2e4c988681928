package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/warden-egress/warden/authz/policy"

	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"

	"github.com/warden-egress/warden/audit"
	"github.com/warden-egress/warden/bedrock"
	"github.com/warden-egress/warden/guard"
	"github.com/warden-egress/warden/guard/detect"
)

// This file runs the apps' guards (guard.Config, package guard) over
// request bodies; guards_output.go runs them over responses and streamed
// answers.

// wordsType is the finding type of a guard's word list.
const wordsType = "DENIED_WORDS"

// compiledGuard is one guard built for the proxy: a Scanner running all its
// detectors, and what each detector's findings make Warden do.
type compiledGuard struct {
	name             string
	scanner          *detect.Scanner
	actions          map[string]string // detector name -> block | mask | record
	blockUnscannable bool
	input, output    bool          // applies_to
	bedrock          *bedrockGuard // the bedrock: detector (guards_bedrock.go), nil without one
}

// appGuards are the guards one app applies, in the app's order, per side.
type appGuards struct {
	input, output []*compiledGuard
	dryRun        bool // the app's mode is dry-run: blocks are recorded
}

// guardSet maps every app of a policy snapshot to its guards (nil when it
// has none).
type guardSet map[string]*appGuards

// compileGuards builds the guards of apps from defs once per snapshot, each
// guard once whatever the number of apps using it.
func compileGuards(apps []policy.AppConfig, defs map[string]guard.Config) (guardSet, error) {
	built := map[string]*compiledGuard{}
	set := make(guardSet, len(apps))
	for _, a := range apps {
		var ag *appGuards
		for _, name := range a.Guards {
			g, ok := built[name]
			if !ok {
				def, ok := defs[name]
				if !ok {
					return nil, fmt.Errorf("app %s: guard %q is not defined (a guards: section changed by a reload needs a restart)", a.Name, name)
				}
				var err error
				if g, err = compileGuard(name, def); err != nil {
					return nil, fmt.Errorf("guard %s: %w", name, err)
				}
				built[name] = g
			}
			if ag == nil {
				ag = &appGuards{dryRun: a.Mode == policy.ModeDryRun}
			}
			if g.input {
				ag.input = append(ag.input, g)
			}
			if g.output {
				ag.output = append(ag.output, g)
			}
		}
		set[a.Name] = ag
	}
	return set, nil
}

func compileGuard(name string, def guard.Config) (*compiledGuard, error) {
	g := &compiledGuard{name: name, actions: map[string]string{}, blockUnscannable: def.BlocksUnscannable(),
		input: def.AppliesToInput(), output: def.AppliesToOutput()}
	var ds []detect.Detector
	if p := def.PII; p != nil {
		d, err := detect.NewPII(detect.PIIConfig{Types: p.Types, Regexes: p.Custom})
		if err != nil {
			return nil, err
		}
		ds = append(ds, d)
		g.actions[d.Name()] = p.EffectiveAction()
	}
	if w := def.Words; w != nil {
		d, err := detect.NewWords(wordsType, w.List)
		if err != nil {
			return nil, err
		}
		ds = append(ds, d)
		g.actions[d.Name()] = w.EffectiveAction()
	}
	if j := def.Injection; j != nil {
		d := detect.NewInjection()
		ds = append(ds, d)
		g.actions[d.Name()] = j.EffectiveAction()
	}
	if b := def.Bedrock; b != nil {
		act := b.EffectiveAction()
		if act == guard.Mask {
			return nil, fmt.Errorf("bedrock.action: mask is not supported")
		}
		g.bedrock = &bedrockGuard{cfg: *b, action: act}
	}
	g.scanner = detect.NewScanner(ds...)
	return g, nil
}

// guardOutcome is what the input guards decided about one request.
type guardOutcome struct {
	findings []audit.Finding
	// blocked names each blocking guard with the finding types it saw,
	// "guard NAME: the request holds T1, T2"; rule is the first one's
	// "guards.NAME".
	blocked []string
	rule    string
	body    []byte // the rewritten body when a guard masked, else nil
}

// requestFamily is the native body family of the call's model: the
// resolved foundation model's for an indirect id (when all of them agree),
// else the id's own.
func requestFamily(c *call) string {
	if c.model == nil {
		return bedrock.FamilyUnknown
	}
	if f := c.model.Family(); f != bedrock.FamilyUnknown || len(c.rec.ModelResolved) == 0 {
		return f
	}
	fam := ""
	for i, r := range c.rec.ModelResolved {
		m, err := bedrock.ParseModelID(r)
		if err != nil {
			return bedrock.FamilyUnknown
		}
		if f := m.Family(); i == 0 {
			fam = f
		} else if f != fam {
			return bedrock.FamilyUnknown // every string gets scanned
		}
	}
	return fam
}

// maxListedPaths bounds the unscannable paths an error names.
const maxListedPaths = 5

// runInputGuards scans the request body with the app's input guards. In a
// dry-run app nothing is blocked: a block is recorded instead (the caller
// marks the decision dry-run-deny); masks still apply, since they never
// stop a call.
//
// apply calls ApplyGuardrail for the guards with a bedrock: detector.
func runInputGuards(ctx context.Context, c *call, ag *appGuards, dryRun bool, apply guardrailApplier) guardOutcome {
	var out guardOutcome
	blockAction := guard.Block
	if dryRun {
		blockAction = guard.Record
	}
	block := func(g *compiledGuard, msg string) {
		out.blocked = append(out.blocked, "guard "+g.name+": "+msg)
		if out.rule == "" {
			out.rule = "guards." + g.name
		}
	}
	if len(bytes.TrimSpace(c.body)) == 0 {
		return out // GET operations: nothing to scan
	}
	ex, err := c.extract()
	if err != nil {
		// Not JSON (or not UTF-8): Bedrock would refuse it too, and Warden
		// cannot tell what the model would read.
		ex = bedrock.Extracted{Unscannable: []string{"the body (not JSON)"}}
	}
	if len(ex.Unscannable) > 0 {
		paths := ex.Unscannable
		more := ""
		if len(paths) > maxListedPaths {
			more = fmt.Sprintf(" and %d more", len(paths)-maxListedPaths)
			paths = paths[:maxListedPaths]
		}
		for _, g := range ag.input {
			act := guard.Allow
			if g.blockUnscannable {
				act = blockAction
				block(g, fmt.Sprintf("the request holds content Warden cannot scan (%s%s) and the guard blocks unscannable content",
					strings.Join(paths, ", "), more))
			}
			out.findings = append(out.findings, audit.Finding{Guard: g.name, Type: "UNSCANNABLE", Count: len(ex.Unscannable), Action: act})
		}
	}

	var masks []spanEdit
	blockTypes := make([][]string, len(ag.input))
	var buf []detect.Finding
	for si, sp := range ex.Texts {
		var norm string
		var toMask []detect.Finding
		for gi, g := range ag.input {
			var found []detect.Finding
			norm, found = g.scanner.ScanAppend(buf[:0], sp.Text)
			buf = found
			for _, f := range found {
				act := g.actions[f.Detector]
				if act == guard.Mask && c.passthrough {
					// Config validation rejects mask under passthrough; should
					// one get here, the signed body cannot change: block.
					act = guard.Block
				}
				switch act {
				case guard.Block:
					if !slices.Contains(blockTypes[gi], f.Type) {
						blockTypes[gi] = append(blockTypes[gi], f.Type)
					}
					act = blockAction
				case guard.Mask:
					toMask = append(toMask, f)
				}
				out.findings = addFinding(out.findings, audit.Finding{Guard: g.name, Detector: f.Detector, Type: f.Type, Count: 1, Action: act})
			}
		}
		if len(toMask) > 0 {
			masks = append(masks, spanEdit{si, detect.Mask(norm, toMask)})
		}
	}
	for gi, g := range ag.input {
		if g.bedrock == nil || len(ex.Texts) == 0 {
			continue
		}
		if !dryRun && (len(out.blocked) > 0 || slices.ContainsFunc(blockTypes, func(ts []string) bool { return len(ts) > 0 })) {
			break // denied already: spare the paid call
		}
		texts := make([]string, len(ex.Texts))
		for i, sp := range ex.Texts {
			texts[i] = sp.Text
		}
		found, failed := runBedrockGuard(ctx, apply, g.bedrock, types.GuardrailContentSourceInput, texts)
		if failed != "" {
			act := guard.Allow
			if g.bedrock.cfg.BlocksOnError() {
				act = blockAction
				block(g, guardrailFailedMsg(g.bedrock, failed))
			}
			out.findings = addFinding(out.findings, audit.Finding{Guard: g.name, Detector: bedrockDetector, Type: bedrockErrorType, Count: 1, Action: act})
			continue
		}
		for _, t := range found {
			act := g.bedrock.action
			if act == guard.Block {
				if !slices.Contains(blockTypes[gi], t) {
					blockTypes[gi] = append(blockTypes[gi], t)
				}
				act = blockAction
			}
			out.findings = addFinding(out.findings, audit.Finding{Guard: g.name, Detector: bedrockDetector, Type: t, Count: 1, Action: act})
		}
	}
	for gi, g := range ag.input {
		if len(blockTypes[gi]) > 0 {
			block(g, "the request holds "+strings.Join(blockTypes[gi], ", "))
		}
	}
	if len(out.blocked) > 0 && !dryRun || len(masks) == 0 {
		return out
	}

	// Each masked span's JSON string literal is replaced by the JSON
	// encoding of guard.Mask over its normalised text (so the text around
	// the placeholders is the normalised one, NFKC and all).
	out.body = rewriteSpans(c.body, ex, masks)
	return out
}

// applyEdits returns b with each [start,end) replaced; the ranges do not
// overlap (they are distinct JSON string literals).
func applyEdits[E any](b []byte, edits []E, at func(E) (int, int, []byte)) []byte {
	slices.SortFunc(edits, func(x, y E) int { a, _, _ := at(x); b, _, _ := at(y); return a - b })
	out := make([]byte, 0, len(b)+64*len(edits))
	pos := 0
	for _, e := range edits {
		s, end, lit := at(e)
		out = append(out, b[pos:s]...)
		out = append(out, lit...)
		pos = end
	}
	return append(out, b[pos:]...)
}

// jsonString encodes s as a JSON string literal (HTML characters as they are).
func jsonString(s string) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string: cannot fail
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// addFinding counts f into fs, one entry per guard, detector, type and action.
func addFinding(fs []audit.Finding, f audit.Finding) []audit.Finding {
	for i := range fs {
		if fs[i].Guard == f.Guard && fs[i].Detector == f.Detector && fs[i].Type == f.Type && fs[i].Action == f.Action {
			fs[i].Count += f.Count
			return fs
		}
	}
	return append(fs, f)
}

// applyInputGuards runs the app's input guards on c (after the allow
// decision and the body limits, before metadata stamping), rewriting c.body
// when a guard masks. A non-nil error is the answer for the caller: nothing
// is forwarded. dryRunDeny is set when a dry-run app's guard would have
// blocked.
//
// The guards come from the snapshot that decided the call.
func (s *Server) applyInputGuards(ctx context.Context, c *call, d policy.Decision) (dryRunDeny bool, err error) {
	if c.snap == nil || d.App == "" {
		return false, nil
	}
	ag := c.snap.guards[d.App]
	if ag == nil || len(ag.input) == 0 {
		return false, nil
	}
	res := runInputGuards(ctx, c, ag, d.DryRun, s.applyGuardrail)
	c.rec.Findings = append(c.rec.Findings, res.findings...)
	if res.body != nil {
		c.body = res.body
	}
	if len(res.blocked) == 0 {
		return false, nil
	}
	if d.DryRun {
		if d.Allow { // a policy denial recorded first keeps its rule and reason
			c.rec.Rule, c.rec.Reason = res.rule, "warden: "+strings.Join(res.blocked, "; ")
		}
		return true, nil
	}
	c.rec.Rule = res.rule
	return false, bedrock.AccessDenied("warden: %s", strings.Join(res.blocked, "; "))
}
