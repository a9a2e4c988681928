package bedrock

import "testing"

func TestRegionNames(t *testing.T) {
	for _, tc := range []struct {
		region, partition string // partition "" = invalid
	}{
		{"us-east-1", "aws"}, {"ap-southeast-7", "aws"}, {"il-central-1", "aws"}, {"eu-west-3", "aws"},
		{"ca-west-1", "aws"}, {"us-east-10", "aws"},
		{"cn-north-1", "aws-cn"}, {"cn-northwest-1", "aws-cn"},
		{"us-gov-west-1", "aws-us-gov"}, {"us-iso-east-1", "aws-iso"}, {"us-isob-east-1", "aws-iso-b"},
		{"eu-isoe-west-1", "aws-iso-e"}, {"us-isof-south-1", "aws-iso-f"},
		{"", ""}, {"us", ""}, {"us-east", ""}, {"us-east-0", ""}, {"us-east-01", ""}, {"us-east-100", ""},
		{"US-EAST-1", ""}, {"usa-east-1", ""}, {"u-east-1", ""}, {"us-ea-1", ""}, {"us-abcdefghijklm-1", ""},
		{"us-foo-east-1", ""}, {"us-gov-west-1-x", ""}, {"us-east-1 ", ""}, {"us_east_1", ""}, {"us-east-1a", ""},
		{"-east-1", ""}, {"us--1", ""}, {"us-east-", ""},
	} {
		p, ok := RegionPartition(tc.region)
		if ok != (tc.partition != "") || p != tc.partition {
			t.Errorf("RegionPartition(%q) = %q, %v; want %q", tc.region, p, ok, tc.partition)
		}
		if ValidRegion(tc.region) != (tc.partition != "") {
			t.Errorf("ValidRegion(%q) = %v", tc.region, !ok)
		}
	}
}

func TestRegionPatterns(t *testing.T) {
	for p, want := range map[string]bool{
		"*": true, "us-east-1": true, "eu-*": true, "us-east-*": true, "us-gov-*": true,
		"": false, "foo": false, "us-east": false, "US-*": false, "*-east-1": false, "us east*": false, "**": false,
	} {
		if got := ValidRegionPattern(p); got != want {
			t.Errorf("ValidRegionPattern(%q) = %v, want %v", p, got, want)
		}
	}
}

// FuzzRegion: a valid region is also a valid pattern, parses inside a model
// ARN of its partition and as a runtime host.
func FuzzRegion(f *testing.F) {
	for _, s := range []string{"us-east-1", "us-gov-west-1", "cn-north-1", "us-isob-east-1", "eu-*", "x", "us-east-01"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, r string) {
		p, ok := RegionPartition(r)
		if !ok {
			return
		}
		if !ValidRegionPattern(r) {
			t.Fatalf("region %q is not a valid pattern", r)
		}
		if !validRegion(p, r) {
			t.Fatalf("region %q not in its own partition %q", r, p)
		}
		h, err := ParseRuntimeHost("bedrock-runtime." + r + ".amazonaws.com")
		if p == "aws-cn" {
			h, err = ParseRuntimeHost("bedrock-runtime." + r + ".amazonaws.com.cn")
		}
		if err == nil && h.Region != r {
			t.Fatalf("host for %q parsed region %q", r, h.Region)
		}
	})
}
