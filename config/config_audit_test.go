package config

import (
	"strings"
	"testing"
	"time"

	"github.com/warden-egress/warden/audit"
)

func TestAuditShareAndDenialWindowConfig(t *testing.T) {
	cfg, err := ParseConfig([]byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if s := cfg.Audit.Spool.Share; s.Unidentified != audit.DefaultShareUnidentified || s.PerApp != audit.DefaultSharePerApp {
		t.Errorf("share defaults: %+v", s)
	}
	if w := cfg.Audit.DenialWindow; w == nil || *w != time.Second {
		t.Errorf("denial_window default: %v", w)
	}
	cfg, err = ParseConfig([]byte(minimal + "audit: {denial_window: 0s, spool: {share: {unidentified: 0.02, per_app: 1}}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if s := cfg.Audit.Spool.Share; s.Unidentified != 0.02 || s.PerApp != 1 || cfg.Audit.DenialWindow == nil || *cfg.Audit.DenialWindow != 0 {
		t.Errorf("set values: %+v, window %v", s, cfg.Audit.DenialWindow)
	}
	for _, c := range []struct{ yaml, want string }{
		{"audit: {spool: {share: {unidentified: -0.1}}}", "audit.spool.share.unidentified -0.1"},
		{"audit: {spool: {share: {per_app: 1.5}}}", "audit.spool.share.per_app 1.5"},
		{"audit: {spool: {share: {per_app: .nan}}}", "audit.spool.share.per_app NaN"},
		{"audit: {spool: {share: {everyone: 0.5}}}", "everyone"},
		{"audit: {denial_window: -1s}", "audit.denial_window -1s"},
		{"audit: {denial_window: 2m}", "audit.denial_window 2m0s"},
		{"audit: {end_user: plain}", `audit.end_user "plain": want off, sha256 or raw`},
	} {
		_, err := ParseConfig([]byte(minimal + c.yaml + "\n"))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error naming %q", c.yaml, err, c.want)
		}
	}
}
