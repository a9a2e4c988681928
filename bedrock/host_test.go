package bedrock

import (
	"strings"
	"testing"
)

func TestParseRuntimeHost(t *testing.T) {
	good := []struct {
		in     string
		region string
		fips   bool
		vpce   bool
	}{
		{"bedrock-runtime.us-east-1.amazonaws.com", "us-east-1", false, false},
		{"bedrock-runtime.us-east-1.amazonaws.com:443", "us-east-1", false, false},
		{"BEDROCK-RUNTIME.US-WEST-2.AMAZONAWS.COM.", "us-west-2", false, false},
		{"bedrock-runtime-fips.us-gov-west-1.amazonaws.com", "us-gov-west-1", true, false},
		{"bedrock-runtime.cn-north-1.amazonaws.com.cn", "cn-north-1", false, false},
		{"bedrock-runtime.eu-central-1.api.aws", "eu-central-1", false, false},
		{"bedrock-runtime-fips.us-east-1.api.aws", "us-east-1", true, false},
		{"vpce-0abc123-xyz.bedrock-runtime.us-east-1.vpce.amazonaws.com", "us-east-1", false, true},
		{"vpce-0abc123-xyz-us-east-1a.bedrock-runtime.us-east-1.vpce.amazonaws.com", "us-east-1", false, true},
	}
	for _, tc := range good {
		h, err := ParseRuntimeHost(tc.in)
		if err != nil {
			t.Errorf("ParseRuntimeHost(%q): %v", tc.in, err)
			continue
		}
		if tc.vpce && h.VPCEndpointID != "vpce-0abc123" || !tc.vpce && h.VPCEndpointID != "" {
			t.Errorf("ParseRuntimeHost(%q): endpoint id %q", tc.in, h.VPCEndpointID)
		}
		if h.Region != tc.region || h.FIPS != tc.fips || h.VPCE != tc.vpce {
			t.Errorf("ParseRuntimeHost(%q) = %+v, want region %s fips %v vpce %v", tc.in, h, tc.region, tc.fips, tc.vpce)
		}
		if strings.ContainsAny(h.Host, ":A") || strings.HasSuffix(h.Host, ".") {
			t.Errorf("ParseRuntimeHost(%q).Host = %q, want lower case without port or dot", tc.in, h.Host)
		}
	}
	bad := []string{
		"", ":443", "bedrock-runtime.us-east-1.amazonaws.com:8443",
		"bedrock.us-east-1.amazonaws.com",                       // control plane
		"bedrock-agent-runtime.us-east-1.amazonaws.com",         // another service (ParseAgentRuntimeHost)
		"sts.us-east-1.amazonaws.com",                           //
		"s3.bedrock-runtime.us-east-1.amazonaws.com",            // extra label
		"bedrock-runtime.us-east-1.amazonaws.com.evil.com",      // suffix trick
		"bedrock-runtime.amazonaws.com",                         // no region
		"bedrock-runtime.us-east.amazonaws.com",                 // not a region
		"bedrock-runtime.cn-north-1.amazonaws.com",              // China outside .cn
		"bedrock-runtime.us-east-1.amazonaws.com.cn",            // not China inside .cn
		"vpce-1.s3.us-east-1.vpce.amazonaws.com",                // another service's endpoint
		"x.vpce-1.bedrock-runtime.us-east-1.vpce.amazonaws.com", // extra label
		"bedrock-runtime.us-east-1.vpce.amazonaws.com",          // no endpoint id
		"127.0.0.1", "[::1]:443", "bedrock-runtime.us_east-1.amazonaws.com",
		"bedrock-runtime..amazonaws.com", "-bedrock-runtime.us-east-1.amazonaws.com",
	}
	for _, in := range bad {
		if h, err := ParseRuntimeHost(in); err == nil {
			t.Errorf("ParseRuntimeHost(%q) = %+v, want an error", in, h)
		}
	}
}

func FuzzParseRuntimeHost(f *testing.F) {
	for _, s := range []string{"bedrock-runtime.us-east-1.amazonaws.com", "vpce-1.bedrock-runtime.eu-west-1.vpce.amazonaws.com",
		"bedrock-runtime.cn-north-1.amazonaws.com.cn:443", "bedrock-runtime-fips.us-east-1.api.aws", "a.b", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		h, err := ParseRuntimeHost(in)
		if err != nil {
			return
		}
		// Whatever is accepted round-trips and stays a runtime name.
		again, err := ParseRuntimeHost(h.Host)
		if err != nil || again != h {
			t.Fatalf("ParseRuntimeHost(%q) = %+v but its Host re-parses as %+v, %v", in, h, again, err)
		}
		if !strings.Contains(h.Host, "bedrock-runtime") || !strings.Contains(h.Host, "."+h.Region+".") {
			t.Fatalf("ParseRuntimeHost(%q) = %+v", in, h)
		}
	})
}
