package bedrock

import (
	"fmt"
	"strings"
)

// RuntimeHost is a Bedrock runtime host name taken apart: which region it
// serves and how it is spelled. Forward-proxy and transparent modes learn the
// host from CONNECT or TLS SNI and must know the region before forwarding.
type RuntimeHost struct {
	Host   string // lower case, no trailing dot, no port
	Region string
	FIPS   bool
	VPCE   bool // an interface VPC endpoint name (vpce-ID[-AZ].bedrock-runtime.REGION.vpce.amazonaws.com)
	// VPCEndpointID is the endpoint's id ("vpce-" and its hex digits) when
	// VPCE: the DNS label is the id, a suffix and, for a zonal name, the AZ.
	VPCEndpointID string
}

// ParseRuntimeHost accepts exactly the Bedrock runtime name forms and returns
// their region:
//
//	bedrock-runtime[-fips].REGION.amazonaws.com
//	bedrock-runtime.REGION.amazonaws.com.cn           (China)
//	bedrock-runtime[-fips].REGION.api.aws             (dual-stack)
//	vpce-ID[-AZ].bedrock-runtime.REGION.vpce.amazonaws.com
//
// A port, if present, must be 443. Anything else — other services, extra
// labels, IP addresses — is an error that names the input.
func ParseRuntimeHost(hostport string) (RuntimeHost, error) {
	host := hostport
	if i := strings.LastIndexByte(hostport, ':'); i >= 0 {
		if hostport[i+1:] != "443" {
			return RuntimeHost{}, fmt.Errorf("bedrock: host %q: only port 443 is a Bedrock runtime endpoint", hostport)
		}
		host = hostport[:i]
	}
	h := strings.ToLower(strings.TrimSuffix(host, "."))
	bad := func(why string) (RuntimeHost, error) {
		return RuntimeHost{}, fmt.Errorf("bedrock: host %q is not a Bedrock runtime host name (%s)", hostport, why)
	}
	if h == "" || len(h) > 253 {
		return bad("empty or too long")
	}
	labels := strings.Split(h, ".")
	for _, l := range labels {
		if !dnsLabel(l) {
			return bad("invalid DNS label")
		}
	}
	out := RuntimeHost{Host: h}
	switch {
	case strings.HasSuffix(h, ".vpce.amazonaws.com"):
		// vpce-ID[-AZ] . bedrock-runtime . REGION . vpce . amazonaws . com
		if len(labels) != 6 || !strings.HasPrefix(labels[0], "vpce-") || labels[1] != "bedrock-runtime" {
			return bad("a VPC endpoint name must be vpce-ID.bedrock-runtime.REGION.vpce.amazonaws.com")
		}
		out.VPCE, out.Region = true, labels[2]
		if parts := strings.SplitN(labels[0], "-", 3); len(parts) >= 2 && parts[1] != "" {
			out.VPCEndpointID = "vpce-" + parts[1]
		}
	case strings.HasSuffix(h, ".amazonaws.com.cn"):
		if len(labels) != 5 || labels[0] != "bedrock-runtime" {
			return bad("expected bedrock-runtime.REGION.amazonaws.com.cn")
		}
		out.Region = labels[1]
	case strings.HasSuffix(h, ".amazonaws.com"), strings.HasSuffix(h, ".api.aws"):
		// bedrock-runtime . REGION . amazonaws . com, or … . api . aws
		if len(labels) != 4 {
			return bad("expected bedrock-runtime[-fips].REGION.amazonaws.com or .api.aws")
		}
		switch labels[0] {
		case "bedrock-runtime":
		case "bedrock-runtime-fips":
			out.FIPS = true
		default:
			return bad("not the bedrock-runtime service")
		}
		out.Region = labels[1]
	default:
		return bad("not an AWS runtime domain")
	}
	if !ValidRegion(out.Region) {
		return bad("no region label")
	}
	if strings.HasPrefix(out.Region, "cn-") != strings.HasSuffix(h, ".cn") {
		return bad("China regions live under amazonaws.com.cn")
	}
	return out, nil
}

// dnsLabel reports whether l is an LDH label of 1–63 characters that neither
// starts nor ends with a hyphen.
func dnsLabel(l string) bool {
	if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// IsRuntimeHost reports whether host (no port) is one of the Bedrock runtime
// name forms ParseRuntimeHost accepts.
func IsRuntimeHost(host string) bool {
	if strings.Contains(host, ":") {
		return false
	}
	_, err := ParseRuntimeHost(host)
	return err == nil
}
