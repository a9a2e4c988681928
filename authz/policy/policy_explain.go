package policy

import (
	"fmt"
	"strings"

	"github.com/warden-egress/warden/authz/identity"
)

// Explanation says how a decision was reached: every app considered in
// file order (up to the one that decided), each selector's result, and the
// decision. It is for the people who write policy, not for callers: it
// shows other apps' selectors.
type Explanation struct {
	Apps     []AppTrace
	Decision Decision
}

// AppTrace is one app's selector results.
type AppTrace struct {
	Index     int
	Name      string
	Line      int
	Mode      string
	AllowWeak bool
	Selected  bool
	Selectors []SelectorTrace
}

// SelectorTrace is one selector and what it found.
type SelectorTrace struct {
	Selector string // e.g. "tags k8s.namespace=payments"
	OK       bool
	Detail   string // "ok", "tag missing", …
}

// Explain decides like Decide and records why. Apps are scanned linearly
// (without the index), so Explain also cross-checks the index.
func (p *Policy) Explain(id identity.Identity, call Call) Explanation {
	var ex Explanation
	for i := range p.apps {
		a := &p.apps[i]
		tr := AppTrace{Index: i, Name: a.name, Line: a.line, Mode: ModeEnforce, AllowWeak: a.allowWeak, Selected: true}
		if a.dryRun {
			tr.Mode = ModeDryRun
		}
		for j := range a.sels {
			s := &a.sels[j]
			r := s.check(id, a.allowWeak)
			st := SelectorTrace{Selector: s.String(), OK: r == selOK}
			switch r {
			case selOK:
				st.Detail = "ok"
			case selMissing:
				st.Detail = "tag missing"
			case selWeak:
				st.Detail = fmt.Sprintf("tag is weak (from %s); this key needs a strong tag unless the app sets allow_weak_identity: true", sourceOf(id, s.key))
			case selMismatch:
				st.Detail = fmt.Sprintf("value %q does not match", id.Tags[s.key].Value)
			}
			tr.Selected = tr.Selected && st.OK
			tr.Selectors = append(tr.Selectors, st)
		}
		ex.Apps = append(ex.Apps, tr)
		if tr.Selected {
			break
		}
	}
	ex.Decision = p.Decide(id, call)
	return ex
}

func sourceOf(id identity.Identity, key string) string {
	if s := id.Tags[key].Source; s != "" {
		return s
	}
	if id.Source != "" {
		return id.Source
	}
	return "an unnamed source"
}

func (s *selector) String() string {
	switch s.kind {
	case selEq:
		return fmt.Sprintf("tags %s=%s", s.key, s.value)
	case selIn:
		return fmt.Sprintf("in %s=[%s]", s.key, strings.Join(s.values, ", "))
	case selGlob:
		return fmt.Sprintf("glob %s=%s", s.key, s.value)
	}
	return "exists " + s.key
}
