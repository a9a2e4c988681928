package config

import (
	"strings"
	"testing"
)

// The budgets' validation: a token or cost budget needs max_output_tokens,
// a cost budget a price table, and the store section its pieces.
func TestBudgetsConfigErrors(t *testing.T) {
	app := "    allow: {models: [\"*\"], operations: [Converse]}\n"
	withApp := func(extra string) string { return strings.Replace(minimal, app, app+extra, 1) }
	for _, tc := range []struct {
		name, yaml string
		want       []string
	}{
		{"token budget without max_output_tokens", withApp("    budgets: {tokens_per_day: 1000}\n"), []string{"apps[0] (a)", "needs limits.max_output_tokens"}},
		{"cost budget without max_output_tokens", withApp("    limits: {}\n    budgets: {cost_per_day_usd: 5}\n"), []string{"needs limits.max_output_tokens", "audit.prices, which is empty"}},
		{"negative budget", withApp("    budgets: {requests_per_minute: -1}\n"), []string{"budgets.requests_per_minute", "negative"}},
		{"async price without a cost budget", withApp("    budgets: {async_invoke_cost_usd: 1}\n"), []string{"budgets.async_invoke_cost_usd"}},
		{"unknown budget key", withApp("    budgets: {tokens_per_week: 1}\n"), []string{"tokens_per_week"}},
		{"redis store without redis", minimal + "budgets: {store: redis}\n", []string{"budgets.redis: required"}},
		{"redis section with memory store", minimal + "budgets: {redis: {address: \"127.0.0.1:6379\"}}\n", []string{"budgets.store: redis"}},
		{"bad store", minimal + "budgets: {store: etcd}\n", []string{"budgets.store", "memory or redis"}},
		{"fail_open on memory", minimal + "budgets: {on_store_error: fail_open}\n", []string{"fail_open applies to a shared store"}},
		{"bad address", minimal + "budgets: {store: redis, redis: {address: redis}}\n", []string{"budgets.redis.address", "host:port"}},
		{"address port out of range", minimal + "budgets: {store: redis, redis: {address: \"redis:637900\"}}\n", []string{"budgets.redis.address", `port "637900"`}},
		{"several addresses without cluster", minimal + "budgets: {store: redis, redis: {addresses: [\"a:1\", \"b:1\"]}}\n", []string{"cluster: true"}},
		{"short reservation ttl", minimal + "budgets: {reservation_ttl: 10s}\n", []string{"budgets.reservation_ttl"}},
		{"prefix with a brace", minimal + "budgets: {store: redis, redis: {address: \"h:1\", key_prefix: \"w{x}\"}}\n", []string{"budgets.redis.key_prefix"}},
		{"tls half a key pair", minimal + "budgets: {store: redis, redis: {address: \"h:1\", tls: {cert_file: /c}}}\n", []string{"cert_file and key_file"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tc.yaml))
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	ok := withApp("    limits: {max_output_tokens: 512}\n    budgets: {requests_per_minute: 60, tokens_per_day: 100000, cost_per_month_usd: 20, concurrent_streams: 4}\n") +
		"audit: {prices: {\"anthropic.*\": {input_per_mtok: 3, output_per_mtok: 15}}}\n" +
		"budgets: {store: redis, on_store_error: fail_open, replicas: 3, redis: {address: \"127.0.0.1:6379\", username: warden, password_file: /run/secrets/redis}}\n"
	cfg, err := ParseConfig([]byte(ok))
	if err != nil {
		t.Fatalf("a valid budgets config: %v", err)
	}
	if cfg.Apps[0].Budgets.TokensPerDay != 100000 || cfg.Budgets.Redis.Username != "warden" {
		t.Fatalf("decoded: %+v %+v", cfg.Apps[0].Budgets, cfg.Budgets)
	}
}
