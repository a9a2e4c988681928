package guard

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"

	"github.com/warden-egress/warden/bedrock"
	"github.com/warden-egress/warden/guard/detect"
)

// This file compiles the apps' guards (Config, package detect) and runs them
// over request bodies; output.go runs them over responses and streamed
// answers, bedrock.go is the bedrock: detector (ApplyGuardrail).

// wordsType is the finding type of a guard's word list.
const wordsType = "DENIED_WORDS"

// PhaseOutput marks findings in the model's answer; a request's have no
// phase ("").
const PhaseOutput = "output"

// Finding is what the guards found, counted: one entry per guard, detector,
// type and action. It names types, never values. Its fields are those of
// audit.Finding, in the same order, so a caller converts it with
// audit.Finding(f); guard does not import audit (the record is the
// caller's).
type Finding struct {
	Guard    string
	Detector string // "" for UNSCANNABLE
	Type     string
	Count    int
	// Action is what was done: block, mask, record, or allow (unscannable
	// content or a failed guardrail call let through). A block that a
	// dry-run only records is record.
	Action string
	// Phase is PhaseOutput for findings in the model's answer, "" for the
	// request's.
	Phase string
}

// Outcome is what the guards decided about a request or an answer.
type Outcome struct {
	// Findings are every guard's findings, in guard order.
	Findings []Finding
	// Message says why the guards block, "guard NAME: why; guard NAME2:
	// why", or is "" when none does. Rule is the first blocking guard's
	// "guards.NAME".
	Message, Rule string
	// DryRun says the blocks were only recorded (the findings say record):
	// the call goes on and the caller records a dry-run denial.
	DryRun bool
	// Body is the body with the masked texts rewritten, nil when nothing
	// was masked or the guards block (outside dry-run).
	Body []byte
}

// Blocked reports whether a guard blocks (or, in dry-run, would have).
func (o *Outcome) Blocked() bool { return o.Message != "" }

// compiled is one guard built from its Config: a Scanner running all its
// detectors, and what each detector's findings make Warden do.
type compiled struct {
	name             string
	scanner          *detect.Scanner
	actions          map[string]string // detector name -> block | mask | record
	blockUnscannable bool
	input, output    bool            // applies_to
	bedrock          *bedrockGuard   // the bedrock: detector (bedrock.go), nil without one
	ids              *detect.Scanner // the number and key types run on tool-use ids (ids.go), nil for none
	idKey            []byte          // keys the hash that masks an id
	masks            bool            // some action is mask: scans keep the normalised text
	holdBound        int             // the most streamed text held for an unfinished value (Stream)
	holdAll          bool            // a custom expression can match whitespace: hold up to holdBound
}

// Guards are the guards one app applies, in the app's order, per side. A
// nil *Guards applies none.
type Guards struct {
	input, output []*compiled
	dryRun        bool // the app's mode is dry-run: blocks are recorded
}

// HasInput reports whether ag checks requests.
func (ag *Guards) HasInput() bool { return ag != nil && len(ag.input) > 0 }

// HasOutput reports whether ag checks the model's answers.
func (ag *Guards) HasOutput() bool { return ag != nil && len(ag.output) > 0 }

// DryRun reports whether the app the guards belong to runs in dry-run mode.
func (ag *Guards) DryRun() bool { return ag != nil && ag.dryRun }

// App is what Compile needs to know of one app.
type App struct {
	Name   string
	Guards []string // the names of the guards it applies, in order
	DryRun bool     // the app's mode is dry-run
}

// Set holds every app's guards for one policy.
type Set struct {
	apps map[string]*Guards
}

// For returns app's guards, nil when it applies none.
func (s *Set) For(app string) *Guards {
	if s == nil {
		return nil
	}
	return s.apps[app]
}

// Compile builds the guards of apps from defs once per policy, each guard
// once whatever the number of apps using it.
func Compile(apps []App, defs map[string]Config) (*Set, error) {
	built := map[string]*compiled{}
	set := &Set{apps: make(map[string]*Guards, len(apps))}
	for _, a := range apps {
		var ag *Guards
		for _, name := range a.Guards {
			g, ok := built[name]
			if !ok {
				def, ok := defs[name]
				if !ok {
					return nil, fmt.Errorf("app %s: guard %q is not defined (a guards: section changed by a reload needs a restart)", a.Name, name)
				}
				var err error
				if g, err = compile(name, def); err != nil {
					return nil, fmt.Errorf("guard %s: %w", name, err)
				}
				built[name] = g
			}
			if ag == nil {
				ag = &Guards{dryRun: a.DryRun}
			}
			if g.input {
				ag.input = append(ag.input, g)
			}
			if g.output {
				ag.output = append(ag.output, g)
			}
		}
		set.apps[a.Name] = ag
	}
	return set, nil
}

func compile(name string, def Config) (*compiled, error) {
	g := &compiled{name: name, actions: map[string]string{}, blockUnscannable: def.BlocksUnscannable(),
		input: def.AppliesToInput(), output: def.AppliesToOutput()}
	var ds []detect.Detector
	if p := def.PII; p != nil {
		d, err := detect.NewPII(detect.PIIConfig{Types: p.Types, Regexes: p.Custom})
		if err != nil {
			return nil, err
		}
		ds = append(ds, d)
		g.actions[d.Name()] = p.EffectiveAction()
		if g.ids, err = idScanner(p.Types); err != nil {
			return nil, err
		}
		g.idKey = newIDKey()
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
	for _, act := range g.actions {
		g.masks = g.masks || act == Mask
	}
	if b := def.Bedrock; b != nil {
		act := b.EffectiveAction()
		if act == Mask {
			return nil, fmt.Errorf("bedrock.action: mask is not supported")
		}
		g.bedrock = &bedrockGuard{cfg: *b, action: act}
	}
	g.scanner = detect.NewScanner(ds...)
	g.holdBound = g.scanner.MaxHold(def.EffectiveMaxHoldBytes())
	if p := def.PII; p != nil {
		for _, expr := range p.Custom {
			g.holdAll = g.holdAll || detect.MatchesSpace(expr)
		}
	}
	return g, nil
}

// Request is a request body as the input guards see it.
type Request struct {
	// Body is the body as it would be forwarded.
	Body []byte
	// Extracted is its text (bedrock.ExtractRequest for the call's
	// operation and model family); ExtractErr is ExtractRequest's error,
	// which makes the whole body unscannable (not JSON, or not UTF-8:
	// Bedrock would refuse it too, and Warden cannot tell what the model
	// would read).
	Extracted  bedrock.Extracted
	ExtractErr error
	// Passthrough says the caller's signature covers the body, which then
	// cannot change: a mask blocks instead (configuration validation
	// rejects mask under passthrough; this is the second line).
	Passthrough bool
	// DryRun: nothing is blocked, a block is recorded instead (masks still
	// apply, since they never stop a call).
	DryRun bool
}

// maxListedPaths bounds the unscannable paths an error names.
const maxListedPaths = 5

// CheckInput scans a request with ag's input guards: what they found, the
// masked body, and whether they block. gr applies the guards with a
// bedrock: detector (ApplyGuardrail, source INPUT); ctx is the client's
// request, so a client that goes away cancels that call.
func (ag *Guards) CheckInput(ctx context.Context, req Request, gr Guardrail) (out Outcome) {
	out.DryRun = req.DryRun
	if !ag.HasInput() {
		return out
	}
	var blocked []string
	dryRun := req.DryRun
	blockAction := Block
	if dryRun {
		blockAction = Record
	}
	block := func(g *compiled, msg string) {
		blocked = append(blocked, "guard "+g.name+": "+msg)
		if out.Rule == "" {
			out.Rule = "guards." + g.name
		}
	}
	defer func() { out.Message = strings.Join(blocked, "; ") }() // every return below
	if len(bytes.TrimSpace(req.Body)) == 0 {
		return out // GET operations: nothing to scan
	}
	ex := req.Extracted
	if req.ExtractErr != nil {
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
			act := Allow
			if g.blockUnscannable {
				act = blockAction
				block(g, fmt.Sprintf("the request holds content Warden cannot scan (%s%s) and the guard blocks unscannable content",
					strings.Join(paths, ", "), more))
			}
			out.Findings = append(out.Findings, Finding{Guard: g.name, Type: "UNSCANNABLE", Count: len(ex.Unscannable), Action: act})
		}
	}

	var masks []spanEdit
	blockTypes := make([][]string, len(ag.input))
	var buf []detect.Finding
	for si, sp := range ex.Texts {
		var norm string
		var toMask []detect.Finding
		for gi, g := range ag.input {
			found := scanText(g, buf[:0], sp.Text, &norm)
			buf = found
			for _, f := range found {
				act := g.actions[f.Detector]
				if act == Mask && req.Passthrough {
					// Config validation rejects mask under passthrough; should
					// one get here, the signed body cannot change: block.
					act = Block
				}
				switch act {
				case Block:
					if !slices.Contains(blockTypes[gi], f.Type) {
						blockTypes[gi] = append(blockTypes[gi], f.Type)
					}
					act = blockAction
				case Mask:
					toMask = append(toMask, f)
				}
				out.Findings = addFinding(out.Findings, Finding{Guard: g.name, Detector: f.Detector, Type: f.Type, Count: 1, Action: act})
			}
		}
		if len(toMask) > 0 {
			masks = append(masks, spanEdit{si, detect.Mask(norm, toMask)})
		}
	}
	// Tool-use ids (ids.go): masking replaces the whole id.
	for j, sp := range ex.IDs {
		var key []byte
		buf = scanIDs(ag.input, sp.Text, buf, func(gi int, f detect.Finding, act string) {
			if act == Mask && req.Passthrough {
				act = Block
			}
			switch act {
			case Block:
				if !slices.Contains(blockTypes[gi], f.Type) {
					blockTypes[gi] = append(blockTypes[gi], f.Type)
				}
				act = blockAction
			case Mask:
				if key == nil {
					key = ag.input[gi].idKey
				}
			}
			out.Findings = addFinding(out.Findings, Finding{Guard: ag.input[gi].name, Detector: f.Detector, Type: f.Type, Count: 1, Action: act})
		})
		if key != nil {
			masks = append(masks, spanEdit{len(ex.Texts) + j, maskID(key, sp.Text)})
		}
	}
	for gi, g := range ag.input {
		if g.bedrock == nil || len(ex.Texts) == 0 {
			continue
		}
		if !dryRun && (len(blocked) > 0 || slices.ContainsFunc(blockTypes, func(ts []string) bool { return len(ts) > 0 })) {
			break // denied already: spare the paid call
		}
		texts := make([]string, len(ex.Texts))
		for i, sp := range ex.Texts {
			texts[i] = sp.Text
		}
		found, failed := runBedrockGuard(ctx, gr, g.bedrock, types.GuardrailContentSourceInput, texts)
		if failed != "" {
			act := Allow
			if g.bedrock.cfg.BlocksOnError() {
				act = blockAction
				block(g, guardrailFailedMsg(g.bedrock, failed))
			}
			out.Findings = addFinding(out.Findings, Finding{Guard: g.name, Detector: bedrockDetector, Type: bedrockErrorType, Count: 1, Action: act})
			continue
		}
		for _, t := range found {
			act := g.bedrock.action
			if act == Block {
				if !slices.Contains(blockTypes[gi], t) {
					blockTypes[gi] = append(blockTypes[gi], t)
				}
				act = blockAction
			}
			out.Findings = addFinding(out.Findings, Finding{Guard: g.name, Detector: bedrockDetector, Type: t, Count: 1, Action: act})
		}
	}
	for gi, g := range ag.input {
		if len(blockTypes[gi]) > 0 {
			block(g, "the request holds "+strings.Join(blockTypes[gi], ", "))
		}
	}
	if len(blocked) > 0 && !dryRun || len(masks) == 0 {
		return out
	}

	// Each masked span's JSON string literal is replaced by the JSON
	// encoding of detect.Mask over its normalised text (so the text around
	// the placeholders is the normalised one, NFKC and all).
	out.Body = rewriteSpans(req.Body, withIDs(ex), masks)
	return out
}

// addFinding counts f into fs, one entry per guard, detector, type and action.
func addFinding(fs []Finding, f Finding) []Finding {
	for i := range fs {
		if fs[i].Guard == f.Guard && fs[i].Detector == f.Detector && fs[i].Type == f.Type && fs[i].Action == f.Action {
			fs[i].Count += f.Count
			return fs
		}
	}
	return append(fs, f)
}

// scanText runs g's scanner over text and appends its findings to dst; when g
// masks and finds something, *norm becomes the normalised text the offsets
// refer to (the text to mask). A guard that never masks does not copy it.
func scanText(g *compiled, dst []detect.Finding, text string, norm *string) []detect.Finding {
	if !g.masks {
		return g.scanner.ScanFindings(dst, text)
	}
	n, found := g.scanner.ScanAppend(dst, text)
	if len(found) > len(dst) {
		*norm = n // a scan that finds nothing may return text itself
	}
	return found
}
