package config

import (
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/warden-egress/warden/audit"

	"github.com/warden-egress/warden/bedrock"
)

func TestPricesLookup(t *testing.T) {
	p, err := audit.NewPrices(map[string]audit.PriceConfig{
		"anthropic.claude-3-5-haiku-20241022-v1:0": {Input: 0.8, Output: 4, CacheRead: 0.08, CacheWrite: 1},
		"anthropic.claude-3-5-haiku-*":             {Input: 1, Output: 5},
		"anthropic.*":                              {Input: 3, Output: 15},
		"us.anthropic.claude-3-5-sonnet-*":         {Input: 3.3, Output: 16.5},
		"*":                                        {Input: 10, Output: 10},
	})
	if err != nil {
		t.Fatal(err)
	}
	for model, want := range map[string]float64{ // the input price found
		"anthropic.claude-3-5-haiku-20241022-v1:0": 0.8, // exact beats prefixes
		"anthropic.claude-3-5-haiku-20250101-v2:0": 1,   // longest prefix
		"anthropic.claude-3-opus-20240229-v1:0":    3,
		"meta.llama3-1-70b-instruct-v1:0":          10, // "*"
		// A system profile without a key of its own is its foundation model…
		"us.anthropic.claude-3-5-haiku-20241022-v1:0":                                          0.8,
		"us.anthropic.claude-3-5-haiku-20250101-v2:0":                                          1, // a longer prefix beats "*"
		"arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-5-haiku-20241022-v1:0": 0.8,
		"us.anthropic.claude-3-5-sonnet-20241022-v2:0":                                         3.3, // …unless it has one
		"arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123def456":    10,
	} {
		got, ok := p.Lookup(model)
		if !ok || got.Input != want {
			t.Errorf("Lookup(%s) = %+v, %v; want input %v", model, got, ok, want)
		}
	}

	// Without a catch-all, profiles and foundation ARNs fall back to the foundation model.
	q, err := audit.NewPrices(map[string]audit.PriceConfig{"anthropic.claude-3-5-haiku-20241022-v1:0": {Input: 0.8, Output: 4}})
	if err != nil {
		t.Fatal(err)
	}
	for _, model := range []string{"us.anthropic.claude-3-5-haiku-20241022-v1:0", "global.anthropic.claude-3-5-haiku-20241022-v1:0",
		"arn:aws:bedrock:us-east-1:123456789012:inference-profile/eu.anthropic.claude-3-5-haiku-20241022-v1:0"} {
		if got, ok := q.Lookup(model); !ok || got.Input != 0.8 {
			t.Errorf("Lookup(%s) = %+v, %v; want the foundation model's price", model, got, ok)
		}
	}
	for _, model := range []string{"", "amazon.nova-lite-v1:0", "arn:aws:bedrock:us-east-1:123456789012:provisioned-model/abc123def456"} {
		if got, ok := q.Lookup(model); ok {
			t.Errorf("Lookup(%q) = %+v, true; want no price", model, got)
		}
	}
	var none *audit.Prices
	if _, ok := none.Cost("anthropic.claude-3-5-haiku-20241022-v1:0", bedrock.Usage{Input: 1}); ok {
		t.Error("a nil table priced a model")
	}
}

func TestPricesCost(t *testing.T) {
	p, err := audit.NewPrices(map[string]audit.PriceConfig{"anthropic.claude-3-5-haiku-*": {Input: 0.8, Output: 4, CacheRead: 0.08, CacheWrite: 1}})
	if err != nil {
		t.Fatal(err)
	}
	got, ok := p.Cost("us.anthropic.claude-3-5-haiku-20241022-v1:0", bedrock.Usage{Input: 1000, Output: 500, CacheRead: 20000, CacheWrite: 3000})
	want := (1000*0.8 + 500*4 + 20000*0.08 + 3000*1) / 1e6
	if !ok || math.Abs(got-want) > 1e-12 {
		t.Errorf("Cost = %v, %v; want %v", got, ok, want)
	}
	if _, ok := p.Cost("amazon.nova-lite-v1:0", bedrock.Usage{Input: 1}); ok {
		t.Error("an unpriced model has a cost")
	}
}

func TestPricesErrors(t *testing.T) {
	for key, wantErr := range map[string]string{
		"anthropic.*-haiku": "'*' may only end a key",
		"*anthropic":        "'*' may only end a key",
		"a**":               "'*' may only end a key",
		"":                  "empty model key",
	} {
		_, err := audit.NewPrices(map[string]audit.PriceConfig{key: {Input: 1}})
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("NewPrices(%q) error = %v; want %q", key, err, wantErr)
		}
	}
	if _, err := audit.NewPrices(map[string]audit.PriceConfig{"x": {Output: -1}}); err == nil || !strings.Contains(err.Error(), "audit.prices[x]") {
		t.Errorf("negative price: error = %v", err)
	}
}

func TestConfigPrices(t *testing.T) {
	cfg, err := ParseConfig([]byte(minimal + `
audit:
  prices:
    "anthropic.claude-3-5-haiku-*": {input_per_mtok: 0.8, output_per_mtok: 4}
`))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if c, ok := cfg.Audit.PriceTable().Cost("anthropic.claude-3-5-haiku-20241022-v1:0", bedrock.Usage{Input: 1e6, Output: 1e6}); !ok || c != 4.8 {
		t.Errorf("cost from the config = %v, %v; want 4.8", c, ok)
	}
	// A second validation of an equal config compiles an equal table, so
	// a reload of the same file sees no restart key.
	again, _ := ParseConfig([]byte(minimal + `
audit:
  prices:
    "anthropic.claude-3-5-haiku-*": {input_per_mtok: 0.8, output_per_mtok: 4}
`))
	_ = again.Validate()
	if keys := RestartKeys(cfg, again); len(keys) != 0 {
		t.Errorf("RestartKeys of equal configs = %v", keys)
	}
	if !reflect.DeepEqual(cfg.Audit.PriceTable(), again.Audit.PriceTable()) {
		t.Error("equal tables compile differently")
	}

	_, err = ParseConfig([]byte(minimal + `
audit:
  prices:
    "anthropic.*-haiku": {input_per_mtok: 1}
`))
	if err == nil {
		cfg2, _ := ParseConfig([]byte(minimal))
		cfg2.Audit.Prices = map[string]audit.PriceConfig{"anthropic.*-haiku": {Input: 1}}
		err = cfg2.Validate()
	}
	if err == nil || !strings.Contains(err.Error(), `audit.prices[anthropic.*-haiku]: '*' may only end a key`) {
		t.Errorf("a '*' inside a key: error = %v", err)
	}
}
