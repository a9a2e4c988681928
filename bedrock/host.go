package bedrock

import (
	"fmt"
	"strings"
)

// RuntimeHost is a Bedrock runtime host name taken apart: which region it
// serves and how it is spelled. Forward-proxy and transparent modes learn the
// host from CONNECT or TLS SNI and must know the region before forwarding.
type RuntimeHost struct {
	// Service is the endpoint the name serves: bedrock-runtime for every
	// name ParseRuntimeHost accepts; ParseServiceHost also returns
	// bedrock-mantle and bedrock hosts.
	Service Service
	Host    string // lower case, no trailing dot, no port
	Region  string
	FIPS    bool
	VPCE    bool // an interface VPC endpoint name (vpce-ID[-AZ].bedrock-runtime.REGION.vpce.amazonaws.com)
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
	return parseRuntimeForms(hostport, ServiceRuntime, "Bedrock runtime")
}

// ParseAgentRuntimeHost is ParseRuntimeHost for the agent runtime: the same
// name forms with bedrock-agent-runtime[-fips] as the service label, and
// Service ServiceAgentRuntime.
func ParseAgentRuntimeHost(hostport string) (RuntimeHost, error) {
	return parseRuntimeForms(hostport, ServiceAgentRuntime, "Bedrock agent runtime")
}

// ParseControlPlaneHost accepts a Bedrock control plane's host names (svc
// is ServiceBedrock or ServiceAgent): the runtime's name forms with svc as
// the service label,
//
//	SERVICE[-fips].REGION.amazonaws.com
//	SERVICE.REGION.amazonaws.com.cn                   (China)
//	SERVICE[-fips].REGION.api.aws                     (dual-stack)
//	vpce-ID[-AZ].SERVICE.REGION.vpce.amazonaws.com
//
// with a valid region of the name's partition. It is the one check of the
// hosts models.control_plane_url and models.agent_url may name.
func ParseControlPlaneHost(hostport string, svc Service) (RuntimeHost, error) {
	if svc != ServiceBedrock && svc != ServiceAgent {
		return RuntimeHost{}, fmt.Errorf("bedrock: %q is not a control-plane service", svc)
	}
	return parseRuntimeForms(hostport, svc, "Bedrock "+string(svc)+" control-plane")
}

// IsControlPlaneHost reports whether host (no port) is one of the name
// forms ParseControlPlaneHost accepts for svc.
func IsControlPlaneHost(host string, svc Service) bool {
	if strings.Contains(host, ":") {
		return false
	}
	_, err := ParseControlPlaneHost(host, svc)
	return err == nil
}

// RegionalURL is the https URL of svc's regional endpoint in region, and
// false when AWS documents none there: bedrock-mantle and the bedrock host
// (Anthropic's Bedrock-only APIs) have no China names, so in cn-* regions
// only the runtime and the agent runtime have one. The names it builds are
// the ones ParseRuntimeHost, ParseAgentRuntimeHost and ParseServiceHost
// accept.
func RegionalURL(svc Service, region string) (string, bool) {
	if !ValidRegion(region) {
		return "", false
	}
	china := strings.HasPrefix(region, "cn-")
	switch svc {
	case ServiceRuntime, ServiceAgentRuntime:
		if china {
			return "https://" + string(svc) + "." + region + ".amazonaws.com.cn", true
		}
		return "https://" + string(svc) + "." + region + ".amazonaws.com", true
	case ServiceMantle:
		return "https://bedrock-mantle." + region + ".api.aws", !china
	case ServiceBedrock:
		return "https://bedrock." + region + ".amazonaws.com", !china
	}
	return "", false
}

// IsAgentRuntimeHost reports whether host (no port) is one of the agent
// runtime name forms ParseAgentRuntimeHost accepts.
func IsAgentRuntimeHost(host string) bool {
	if strings.Contains(host, ":") {
		return false
	}
	_, err := ParseAgentRuntimeHost(host)
	return err == nil
}

// parseRuntimeForms parses ParseRuntimeHost's name forms for the endpoint
// prefix svc (what names it in errors).
func parseRuntimeForms(hostport string, svc Service, what string) (RuntimeHost, error) {
	service := string(svc)
	host := hostport
	if i := strings.LastIndexByte(hostport, ':'); i >= 0 {
		if hostport[i+1:] != "443" {
			return RuntimeHost{}, fmt.Errorf("bedrock: host %q: only port 443 is a %s endpoint", hostport, what)
		}
		host = hostport[:i]
	}
	h := strings.ToLower(strings.TrimSuffix(host, "."))
	bad := func(why string) (RuntimeHost, error) {
		return RuntimeHost{}, fmt.Errorf("bedrock: host %q is not a %s host name (%s)", hostport, what, why)
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
	out := RuntimeHost{Service: svc, Host: h}
	switch {
	case strings.HasSuffix(h, ".vpce.amazonaws.com"):
		// vpce-ID[-AZ] . bedrock-runtime . REGION . vpce . amazonaws . com
		if len(labels) != 6 || !strings.HasPrefix(labels[0], "vpce-") || labels[1] != service {
			return bad("a VPC endpoint name must be vpce-ID." + service + ".REGION.vpce.amazonaws.com")
		}
		out.VPCE, out.Region = true, labels[2]
		if parts := strings.SplitN(labels[0], "-", 3); len(parts) >= 2 && parts[1] != "" {
			out.VPCEndpointID = "vpce-" + parts[1]
		}
	case strings.HasSuffix(h, ".amazonaws.com.cn"):
		if len(labels) != 5 || labels[0] != service {
			return bad("expected " + service + ".REGION.amazonaws.com.cn")
		}
		out.Region = labels[1]
	case strings.HasSuffix(h, ".amazonaws.com"), strings.HasSuffix(h, ".api.aws"):
		// bedrock-runtime . REGION . amazonaws . com, or … . api . aws
		if len(labels) != 4 {
			return bad("expected " + service + "[-fips].REGION.amazonaws.com or .api.aws")
		}
		switch labels[0] {
		case service:
		case service + "-fips":
			out.FIPS = true
		default:
			return bad("not the " + service + " service")
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

// ParseServiceHost accepts the Bedrock runtime names ParseRuntimeHost
// accepts and, with their Service set:
//
//	bedrock-mantle.REGION.api.aws     (bedrock-mantle: OpenAI-compatible and Anthropic Messages APIs)
//	bedrock.REGION.amazonaws.com      (bedrock: Anthropic's Bedrock-only APIs under /anthropic/v1/)
//
// AWS documents no FIPS, China or VPC endpoint names for these two, so none
// is accepted. A port, if present, must be 443.
func ParseServiceHost(hostport string) (RuntimeHost, error) {
	if h, err := ParseRuntimeHost(hostport); err == nil {
		return h, nil
	}
	host := hostport
	if i := strings.LastIndexByte(hostport, ':'); i >= 0 {
		if hostport[i+1:] != "443" {
			return RuntimeHost{}, fmt.Errorf("bedrock: host %q: only port 443 is a Bedrock endpoint", hostport)
		}
		host = hostport[:i]
	}
	h := strings.ToLower(strings.TrimSuffix(host, "."))
	labels := strings.Split(h, ".")
	for _, l := range labels {
		if !dnsLabel(l) {
			return RuntimeHost{}, fmt.Errorf("bedrock: host %q is not a Bedrock host name (invalid DNS label)", hostport)
		}
	}
	switch {
	case len(labels) == 4 && labels[0] == "bedrock-mantle" && labels[2] == "api" && labels[3] == "aws":
		if ValidRegion(labels[1]) && !strings.HasPrefix(labels[1], "cn-") {
			return RuntimeHost{Service: ServiceMantle, Host: h, Region: labels[1]}, nil
		}
	case len(labels) == 4 && labels[0] == "bedrock" && labels[2] == "amazonaws" && labels[3] == "com":
		if ValidRegion(labels[1]) && !strings.HasPrefix(labels[1], "cn-") {
			return RuntimeHost{Service: ServiceBedrock, Host: h, Region: labels[1]}, nil
		}
	}
	return RuntimeHost{}, fmt.Errorf("bedrock: host %q is not a Bedrock runtime, bedrock-mantle or bedrock host name", hostport)
}
