package audit

import (
	"fmt"
	"sort"
	"strings"

	"github.com/warden-egress/warden/bedrock"
)

// Prices is audit.prices compiled: exact model ids and prefixes (keys
// ending in '*'), each a price in USD per million tokens. It is immutable.
type Prices struct {
	exact    map[string]PriceConfig
	prefixes []pricePrefix // longest first
}

type pricePrefix struct {
	prefix string
	price  PriceConfig
}

// NewPrices compiles a price table. A key is a canonical model id or a
// prefix ending in '*' ("anthropic.claude-3-5-haiku-*"; "*" alone prices
// every model); a '*' anywhere else, an empty key or a negative price is an
// error. A nil or empty table compiles to a table that prices nothing.
func NewPrices(m map[string]PriceConfig) (*Prices, error) {
	p := &Prices{exact: make(map[string]PriceConfig, len(m))}
	var errs []string
	for k, v := range m {
		if err := checkPriceKey(k, v); err != nil {
			errs = append(errs, err.Error())
			continue
		}
		if pre, ok := strings.CutSuffix(k, "*"); ok {
			p.prefixes = append(p.prefixes, pricePrefix{pre, v})
		} else {
			p.exact[k] = v
		}
	}
	if len(errs) > 0 {
		sort.Strings(errs)
		return nil, fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	sort.Slice(p.prefixes, func(i, j int) bool {
		a, b := p.prefixes[i].prefix, p.prefixes[j].prefix
		if len(a) != len(b) {
			return len(a) > len(b)
		}
		return a < b
	})
	return p, nil
}

func checkPriceKey(k string, v PriceConfig) error {
	switch {
	case k == "":
		return fmt.Errorf("audit.prices: an empty model key")
	case strings.Contains(strings.TrimSuffix(k, "*"), "*"):
		return fmt.Errorf("audit.prices[%s]: '*' may only end a key (a prefix), not appear inside it", k)
	case v.Input < 0 || v.Output < 0 || v.CacheRead < 0 || v.CacheWrite < 0:
		return fmt.Errorf("audit.prices[%s]: prices must not be negative", k)
	}
	return nil
}

// Lookup returns the price of a model id: an exact key, else the longest
// matching prefix. A system inference profile ("us.anthropic.…", or a
// foundation-model or profile ARN) is also priced as the foundation model
// it routes to: an exact key for the id, then one for the foundation model,
// then the longest prefix matching either (the id's on a tie), so
// "anthropic.claude-3-5-haiku-*" prices "us.anthropic.claude-3-5-haiku-…"
// even when a catch-all "*" exists.
func (p *Prices) Lookup(model string) (PriceConfig, bool) {
	if p == nil || model == "" || len(p.exact) == 0 && len(p.prefixes) == 0 {
		return PriceConfig{}, false
	}
	if pc, ok := p.exact[model]; ok {
		return pc, true
	}
	foundation := ""
	if m, err := bedrock.ParseModelID(model); err == nil && m.Foundation != model {
		foundation = m.Foundation
	}
	if pc, ok := p.exact[foundation]; ok && foundation != "" {
		return pc, true
	}
	// prefixes are longest first: the first that matches either wins.
	for _, pp := range p.prefixes {
		if strings.HasPrefix(model, pp.prefix) || foundation != "" && strings.HasPrefix(foundation, pp.prefix) {
			return pp.price, true
		}
	}
	return PriceConfig{}, false
}

// Cost is what u costs on canonicalModel in USD, and whether the table
// prices that model.
func (p *Prices) Cost(canonicalModel string, u bedrock.Usage) (float64, bool) {
	pc, ok := p.Lookup(canonicalModel)
	if !ok {
		return 0, false
	}
	return pc.Cost(u), true
}

// Cost prices u at these per-million-token rates.
func (pc PriceConfig) Cost(u bedrock.Usage) float64 {
	return (float64(u.Input)*pc.Input + float64(u.Output)*pc.Output +
		float64(u.CacheRead)*pc.CacheRead + float64(u.CacheWrite)*pc.CacheWrite) / 1e6
}

// PriceTable compiles audit.prices (Validate has checked it; nil if it
// does not compile). Callers compile once and keep the table.
func (a *Config) PriceTable() *Prices {
	p, _ := NewPrices(a.Prices)
	return p
}
