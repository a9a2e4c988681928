package config

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/warden-egress/warden/guard"
	"github.com/warden-egress/warden/guard/detect"
)

// TestGuardPIITypesAgree: the PII types a config may name are the ones the
// detectors find. Before issue 12's split this compared authz's copy of the
// list with guard's; there is one list now (guard/detect), and this checks
// every place that reads it agrees: the published schema's enum, guard's
// validation (accepts each, refuses others) and guard's compilation.
func TestGuardPIITypesAgree(t *testing.T) {
	want := detect.PIITypes()
	if len(want) < 10 {
		t.Fatalf("detect.PIITypes() = %v: too few", want)
	}
	var schema struct {
		Defs map[string]struct {
			Properties map[string]struct {
				Items struct {
					Enum []string `json:"enum"`
				} `json:"items"`
			} `json:"properties"`
		} `json:"$defs"`
	}
	if err := json.Unmarshal(JSONSchema(), &schema); err != nil {
		t.Fatal(err)
	}
	if got := schema.Defs["PIIGuardConfig"].Properties["types"].Items.Enum; !slices.Equal(got, want) {
		t.Errorf("schema PIIGuardConfig.types enum = %v\ndetect.PIITypes() = %v", got, want)
	}
	if got := guard.PIITypes(); !slices.Equal(got, want) {
		t.Errorf("guard.PIITypes() = %v, want detect's %v", got, want)
	}
	g := guard.Config{PII: &guard.PIIConfig{Types: want}}
	if errs := g.Validate(); len(errs) > 0 {
		t.Errorf("guard validation refuses the detectors' own types: %v", errs)
	}
	if _, err := guard.Compile(nil, map[string]guard.Config{"all": g}); err != nil {
		t.Errorf("compiling a guard with every type: %v", err)
	}
	bad := guard.Config{PII: &guard.PIIConfig{Types: []string{"SSN"}}}
	if errs := bad.Validate(); len(errs) != 1 {
		t.Errorf("guard validation of an unknown type: %v, want one error", errs)
	}
}
