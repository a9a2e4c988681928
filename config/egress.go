package config

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/warden-egress/warden/bedrock"
)

// TunnelRule is one parsed egress.tunnel entry.
type TunnelRule struct {
	Host     string // lower case; "*.example.com" matches names under example.com, not example.com itself
	Wildcard bool
	Port     int
}

// ParseTunnel parses an egress.tunnel entry: host or host:port, the host a
// DNS name, optionally "*." followed by a name of at least two labels.
func ParseTunnel(entry string) (TunnelRule, error) {
	host, port := entry, 443
	if h, p, err := net.SplitHostPort(entry); err == nil {
		n, perr := strconv.Atoi(p)
		if perr != nil || n < 1 || n > 65535 {
			return TunnelRule{}, fmt.Errorf("%q: port must be 1-65535", entry)
		}
		host, port = h, n
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	r := TunnelRule{Host: host, Port: port}
	if rest, ok := strings.CutPrefix(host, "*."); ok {
		r.Wildcard, host = true, rest
		if !strings.Contains(host, ".") {
			return TunnelRule{}, fmt.Errorf("%q: a wildcard needs at least two labels after \"*.\"", entry)
		}
	}
	if host == "" || net.ParseIP(host) != nil {
		return TunnelRule{}, fmt.Errorf("%q: name a host, not an address (a tunnel is checked against the name the client asked for)", entry)
	}
	for _, l := range strings.Split(host, ".") {
		if l == "" || len(l) > 63 || strings.Trim(l, "abcdefghijklmnopqrstuvwxyz0123456789-_") != "" {
			return TunnelRule{}, fmt.Errorf("%q: not a DNS name", entry)
		}
	}
	// Tunnelling a Bedrock runtime host would be a way around every policy.
	if bedrock.IsRuntimeHost(host) || strings.Contains(host, "bedrock-runtime") {
		return TunnelRule{}, fmt.Errorf("%q: Bedrock runtime hosts are always intercepted, never tunnelled", entry)
	}
	if r.Wildcard && coversRuntimeHost(host) {
		return TunnelRule{}, fmt.Errorf("%q: too broad: it would cover Bedrock runtime hosts", entry)
	}
	return r, nil
}

// Matches reports whether host (lower case, no port) on port is covered.
func (r TunnelRule) Matches(host string, port int) bool {
	if port != r.Port {
		return false
	}
	if r.Wildcard {
		return strings.HasSuffix(host, r.Host[1:]) // r.Host is "*.x": suffix ".x"
	}
	return host == r.Host
}

func (e EgressConfig) validate() []error {
	var errs []error
	for i, t := range e.Tunnel {
		if _, err := ParseTunnel(t); err != nil {
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
