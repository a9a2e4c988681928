package bedrock

import "testing"

func TestParseAgentRuntimeHost(t *testing.T) {
	good := []struct {
		in         string
		region     string
		fips, vpce bool
	}{
		{"bedrock-agent-runtime.us-east-1.amazonaws.com", "us-east-1", false, false},
		{"bedrock-agent-runtime.us-east-1.amazonaws.com:443", "us-east-1", false, false},
		{"Bedrock-Agent-Runtime.EU-WEST-1.amazonaws.com.", "eu-west-1", false, false},
		{"bedrock-agent-runtime-fips.us-gov-west-1.amazonaws.com", "us-gov-west-1", true, false},
		{"bedrock-agent-runtime.cn-north-1.amazonaws.com.cn", "cn-north-1", false, false},
		{"bedrock-agent-runtime.ap-south-1.api.aws", "ap-south-1", false, false},
		{"bedrock-agent-runtime-fips.us-east-1.api.aws", "us-east-1", true, false},
		{"vpce-0abc123-xyz.bedrock-agent-runtime.us-east-1.vpce.amazonaws.com", "us-east-1", false, true},
	}
	for _, tc := range good {
		h, err := ParseAgentRuntimeHost(tc.in)
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if h.Service != ServiceAgentRuntime || h.Region != tc.region || h.FIPS != tc.fips || h.VPCE != tc.vpce {
			t.Errorf("%q = %+v, want region %s fips %v vpce %v", tc.in, h, tc.region, tc.fips, tc.vpce)
		}
		if h.Service.SigningName() != "bedrock" {
			t.Errorf("signing name %q", h.Service.SigningName())
		}
		if _, err := ParseRuntimeHost(tc.in); err == nil {
			t.Errorf("ParseRuntimeHost(%q) accepted an agent runtime host", tc.in)
		}
	}
	if h, err := ParseRuntimeHost("bedrock-runtime.us-east-1.amazonaws.com"); err != nil || h.Service != ServiceRuntime {
		t.Errorf("ParseRuntimeHost(bedrock-runtime) = %+v, %v", h, err)
	}
	if h, err := ParseAgentRuntimeHost("vpce-0abc123-xyz.bedrock-agent-runtime.us-east-1.vpce.amazonaws.com"); err != nil || h.VPCEndpointID != "vpce-0abc123" {
		t.Errorf("VPC endpoint id: %+v, %v", h, err)
	}
	if !IsAgentRuntimeHost("bedrock-agent-runtime.us-east-1.amazonaws.com") || IsAgentRuntimeHost("bedrock-agent-runtime.us-east-1.amazonaws.com:443") {
		t.Error("IsAgentRuntimeHost")
	}
	bad := []string{
		"bedrock-agent.us-east-1.amazonaws.com", // the agent control plane
		"bedrock-runtime.us-east-1.amazonaws.com",
		"bedrock-agent-runtime.us-east-1.amazonaws.com:8443",
		"bedrock-agent-runtime-fips.cn-north-1.amazonaws.com",
		"bedrock-agent-runtime.us-east-1.amazonaws.com.evil.com",
		"x.bedrock-agent-runtime.us-east-1.amazonaws.com",
		"vpce-1.bedrock-runtime.us-east-1.vpce.amazonaws.com",
		"bedrock-agentcore.us-east-1.amazonaws.com",
	}
	for _, in := range bad {
		if h, err := ParseAgentRuntimeHost(in); err == nil {
			t.Errorf("ParseAgentRuntimeHost(%q) = %+v, want an error", in, h)
		}
	}
}
