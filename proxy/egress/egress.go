// Package egress is what the forward-proxy and transparent listeners let
// leave untouched: the egress section of the configuration (egress.tunnel)
// and its rules, parsed and matched. Bedrock runtime hosts are never
// tunnelled (they are intercepted or refused before any rule is asked), and
// no rule may cover one. It imports nothing of Warden's but bedrock.
package egress

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/warden-egress/warden/bedrock"
)

// Config lists what may leave through Warden untouched (the egress
// section).
type Config struct {
	// Tunnel names hosts ("sts.us-east-1.amazonaws.com", "*.s3.amazonaws.com",
	// optionally with ":port", default 443) that CONNECT or a redirected
	// connection may reach through an untouched TCP tunnel. Everything else
	// that is not a Bedrock runtime host is refused.
	Tunnel []string `yaml:"tunnel"`
}

// Rule is one parsed egress.tunnel entry.
type Rule struct {
	Host     string // lower case; "*.example.com" matches names under example.com, not example.com itself
	Wildcard bool
	Port     int
}

// Parse parses an egress.tunnel entry: host or host:port, the host a
// DNS name, optionally "*." followed by a name of at least two labels.
func Parse(entry string) (Rule, error) {
	host, port := entry, 443
	if h, p, err := net.SplitHostPort(entry); err == nil {
		n, perr := strconv.Atoi(p)
		if perr != nil || n < 1 || n > 65535 {
			return Rule{}, fmt.Errorf("%q: port must be 1-65535", entry)
		}
		host, port = h, n
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	r := Rule{Host: host, Port: port}
	if rest, ok := strings.CutPrefix(host, "*."); ok {
		r.Wildcard, host = true, rest
		if !strings.Contains(host, ".") {
			return Rule{}, fmt.Errorf("%q: a wildcard needs at least two labels after \"*.\"", entry)
		}
	}
	if host == "" || net.ParseIP(host) != nil {
		return Rule{}, fmt.Errorf("%q: name a host, not an address (a tunnel is checked against the name the client asked for)", entry)
	}
	for _, l := range strings.Split(host, ".") {
		if l == "" || len(l) > 63 || strings.Trim(l, "abcdefghijklmnopqrstuvwxyz0123456789-_") != "" {
			return Rule{}, fmt.Errorf("%q: not a DNS name", entry)
		}
	}
	// Tunnelling a Bedrock runtime host would be a way around every policy.
	if bedrock.IsRuntimeHost(host) || strings.Contains(host, "bedrock-runtime") {
		return Rule{}, fmt.Errorf("%q: Bedrock runtime hosts are always intercepted, never tunnelled", entry)
	}
	if r.Wildcard && coversRuntimeHost(host) {
		return Rule{}, fmt.Errorf("%q: too broad: it would cover Bedrock runtime hosts", entry)
	}
	return r, nil
}

// Matches reports whether host (lower case, no port) on port is covered.
func (r Rule) Matches(host string, port int) bool {
	if port != r.Port {
		return false
	}
	if r.Wildcard {
		return strings.HasSuffix(host, r.Host[1:]) // r.Host is "*.x": suffix ".x"
	}
	return host == r.Host
}

// Rules parses every egress.tunnel entry.
func (e Config) Rules() ([]Rule, error) {
	var rules []Rule
	for i, t := range e.Tunnel {
		r, err := Parse(t)
		if err != nil {
			return nil, fmt.Errorf("egress.tunnel[%d]: %w", i, err)
		}
		rules = append(rules, r)
	}
	return rules, nil
}

// Validate reports every egress.tunnel entry that does not parse.
func (e Config) Validate() []error {
	var errs []error
	for i, t := range e.Tunnel {
		if _, err := Parse(t); err != nil {
			errs = append(errs, fmt.Errorf("egress.tunnel[%d]: %w", i, err))
		}
	}
	return errs
}

// coversRuntimeHost reports whether some Bedrock runtime host name ends in
// "."+domain, by completing domain into each runtime name form.
func coversRuntimeHost(domain string) bool {
	for _, p := range []string{
		"bedrock-runtime.", "bedrock-runtime.us-east-1.", "bedrock-runtime.cn-north-1.",
		"bedrock-runtime.us-east-1.amazonaws.", "bedrock-runtime.cn-north-1.amazonaws.com.", "bedrock-runtime.us-east-1.api.",
		"vpce-x.", "vpce-x.bedrock-runtime.", "vpce-x.bedrock-runtime.us-east-1.", "vpce-x.bedrock-runtime.us-east-1.vpce.",
		"vpce-x.bedrock-runtime.us-east-1.vpce.amazonaws.",
	} {
		if _, err := bedrock.ParseRuntimeHost(p + domain); err == nil {
			return true
		}
	}
	return false
}
