package bedrock

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
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

func TestParseControlPlaneHost(t *testing.T) {
	for _, tc := range []struct {
		in     string
		svc    Service
		region string // "" = refused
	}{
		{"bedrock.us-east-1.amazonaws.com", ServiceBedrock, "us-east-1"},
		{"bedrock.us-east-1.amazonaws.com:443", ServiceBedrock, "us-east-1"},
		{"bedrock-fips.us-gov-west-1.amazonaws.com", ServiceBedrock, "us-gov-west-1"},
		{"bedrock.cn-north-1.amazonaws.com.cn", ServiceBedrock, "cn-north-1"},
		{"bedrock.eu-west-1.api.aws", ServiceBedrock, "eu-west-1"},
		{"vpce-0abc-123.bedrock.us-east-1.vpce.amazonaws.com", ServiceBedrock, "us-east-1"},
		{"bedrock-agent.eu-west-1.amazonaws.com", ServiceAgent, "eu-west-1"},
		{"vpce-0abc-123.bedrock-agent.us-east-1.vpce.amazonaws.com", ServiceAgent, "us-east-1"},
		{"bedrock-agent.eu-west-1.amazonaws.com", ServiceBedrock, ""},       // another service
		{"bedrock.us-east-1.amazonaws.com", ServiceAgent, ""},               // another service
		{"bedrock-runtime.us-east-1.amazonaws.com", ServiceBedrock, ""},     // the runtime
		{"bedrock.not-a-region.amazonaws.com", ServiceBedrock, ""},          // no region
		{"bedrock.us-east-1.amazonaws.com.cn", ServiceBedrock, ""},          // China suffix, other partition
		{"bedrock.cn-north-1.amazonaws.com", ServiceBedrock, ""},            // China region, global suffix
		{"bedrock.evil.example.api.aws", ServiceBedrock, ""},                // extra labels
		{"vpce-0abc-123.vpce.amazonaws.com", ServiceBedrock, ""},            // no service label
		{"bedrock.us-east-1.amazonaws.com:8443", ServiceBedrock, ""},        // port
		{"bedrock.us-east-1.amazonaws.com", ServiceRuntime, ""},             // not a control plane
		{"bedrock-mantle.us-east-1.api.aws", Service("bedrock-mantle"), ""}, // not a control plane
	} {
		h, err := ParseControlPlaneHost(tc.in, tc.svc)
		switch {
		case tc.region == "" && err == nil:
			t.Errorf("ParseControlPlaneHost(%q, %s) = %+v, want an error", tc.in, tc.svc, h)
		case tc.region != "" && err != nil:
			t.Errorf("ParseControlPlaneHost(%q, %s): %v", tc.in, tc.svc, err)
		case tc.region != "" && (h.Region != tc.region || h.Service != tc.svc):
			t.Errorf("ParseControlPlaneHost(%q, %s) = %+v, want region %s", tc.in, tc.svc, h, tc.region)
		}
		if ok := IsControlPlaneHost(strings.TrimSuffix(tc.in, ":443"), tc.svc); ok != (tc.region != "") && !strings.Contains(tc.in, ":") {
			t.Errorf("IsControlPlaneHost(%q, %s) = %v", tc.in, tc.svc, ok)
		}
	}
}

func FuzzParseControlPlaneHost(f *testing.F) {
	for _, s := range []string{"bedrock.us-east-1.amazonaws.com", "vpce-0abc-123.bedrock-agent.us-east-1.vpce.amazonaws.com",
		"bedrock.cn-north-1.amazonaws.com.cn:443", "bedrock.x.api.aws", ""} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, in string, agent bool) {
		svc := ServiceBedrock
		if agent {
			svc = ServiceAgent
		}
		h, err := ParseControlPlaneHost(in, svc)
		if err != nil {
			return
		}
		if h.Service != svc || !ValidRegion(h.Region) {
			t.Fatalf("ParseControlPlaneHost(%q, %s) = %+v: wrong service or invalid region", in, svc, h)
		}
		if !strings.Contains(h.Host, "."+h.Region+".") {
			t.Fatalf("ParseControlPlaneHost(%q) = %+v: the region is not a label of the host", in, h)
		}
	})
}

// RegionalURL builds the names the host parsers accept, and none where AWS
// documents none.
func TestRegionalURL(t *testing.T) {
	parse := map[Service]func(string) (RuntimeHost, error){
		ServiceRuntime:      ParseRuntimeHost,
		ServiceAgentRuntime: ParseAgentRuntimeHost,
		ServiceMantle:       ParseServiceHost,
		ServiceBedrock:      ParseServiceHost,
	}
	for _, region := range []string{"us-east-1", "eu-central-2", "us-gov-west-1", "cn-north-1", "cn-northwest-1", "us east 1", ""} {
		for svc, p := range parse {
			raw, ok := RegionalURL(svc, region)
			china := strings.HasPrefix(region, "cn-")
			want := ValidRegion(region) && (!china || svc == ServiceRuntime || svc == ServiceAgentRuntime)
			if ok != want {
				t.Errorf("RegionalURL(%s, %q) = %q, %v; want ok %v", svc, region, raw, ok, want)
				continue
			}
			if !ok {
				continue
			}
			host, found := strings.CutPrefix(raw, "https://")
			if !found {
				t.Errorf("RegionalURL(%s, %q) = %q: not https", svc, region, raw)
				continue
			}
			h, err := p(host)
			if err != nil || h.Service != svc || h.Region != region {
				t.Errorf("RegionalURL(%s, %q) = %q, which parses as %+v, %v", svc, region, raw, h, err)
			}
		}
	}
	if _, ok := RegionalURL(ServiceAgent, "us-east-1"); ok {
		t.Error("RegionalURL builds a control-plane URL; model resolution's SDK clients choose their own")
	}
}

// AWS host names are checked here only (issue 12: host and region checks
// live once, in bedrock): no other package of the module tests a host
// against an AWS domain with the strings package. Building a name for a
// message or a certificate is fine; deciding whether a host is AWS's is
// ParseRuntimeHost's, ParseAgentRuntimeHost's, ParseServiceHost's or
// ParseControlPlaneHost's job.
func TestHostChecksLiveHere(t *testing.T) {
	checks := map[string]bool{"HasSuffix": true, "HasPrefix": true, "Contains": true, "EqualFold": true,
		"TrimSuffix": true, "CutSuffix": true, "Index": true, "LastIndex": true}
	fset := token.NewFileSet()
	checked := 0
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case "node_modules", "testdata", "tools", ".git":
				return filepath.SkipDir
			}
			if rel, _ := filepath.Rel("..", path); rel == "bedrock" {
				return filepath.SkipDir // the one place
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		checked++
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			if x, ok := sel.X.(*ast.Ident); !ok || x.Name != "strings" || !checks[sel.Sel.Name] {
				return true
			}
			for _, a := range call.Args {
				lit, ok := a.(*ast.BasicLit)
				if ok && lit.Kind == token.STRING && (strings.Contains(lit.Value, "amazonaws.com") || strings.Contains(lit.Value, "api.aws")) {
					t.Errorf("%s: strings.%s(…, %s) checks an AWS host outside bedrock; use bedrock's host parsers", fset.Position(call.Pos()), sel.Sel.Name, lit.Value)
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 100 {
		t.Fatalf("checked %d files: not the module", checked)
	}
}
