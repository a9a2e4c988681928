package egress

import "testing"

func TestParse(t *testing.T) {
	good := []struct {
		in         string
		host, port string
		matches    []string // host:port pairs, port 443 unless given
		misses     []string
	}{
		{in: "sts.us-east-1.amazonaws.com", matches: []string{"sts.us-east-1.amazonaws.com"}, misses: []string{"x.sts.us-east-1.amazonaws.com", "sts.us-east-1.amazonaws.com:8443"}},
		{in: "*.s3.amazonaws.com", matches: []string{"bucket.s3.amazonaws.com", "a.b.s3.amazonaws.com"}, misses: []string{"s3.amazonaws.com", "evils3.amazonaws.com"}},
		{in: "Example.COM.:8443", matches: []string{"example.com:8443"}, misses: []string{"example.com"}},
	}
	for _, tc := range good {
		r, err := Parse(tc.in)
		if err != nil {
			t.Fatalf("Parse(%q): %v", tc.in, err)
		}
		check := func(hp string, want bool) {
			host, port := hp, 443
			if h, p, ok := cutPort(hp); ok {
				host, port = h, p
			}
			if got := r.Matches(host, port); got != want {
				t.Errorf("Parse(%q).Matches(%q, %d) = %v, want %v", tc.in, host, port, got, want)
			}
		}
		for _, m := range tc.matches {
			check(m, true)
		}
		for _, m := range tc.misses {
			check(m, false)
		}
	}
	for _, in := range []string{
		"", "10.0.0.1", "[::1]:443", "example.com:0", "example.com:x", "*.com", "*",
		"bedrock-runtime.us-east-1.amazonaws.com", "*.amazonaws.com", "*.us-east-1.amazonaws.com",
		"*.vpce.amazonaws.com", "*.bedrock-runtime.us-east-1.vpce.amazonaws.com", "*.api.aws", "*.us-east-1.api.aws",
		"exa mple.com", "a..b",
	} {
		if r, err := Parse(in); err == nil {
			t.Errorf("Parse(%q) = %+v, want an error", in, r)
		}
	}
}

func cutPort(hp string) (string, int, bool) {
	for i := len(hp) - 1; i >= 0; i-- {
		if hp[i] == ':' {
			n := 0
			for _, c := range hp[i+1:] {
				n = n*10 + int(c-'0')
			}
			return hp[:i], n, true
		}
	}
	return "", 0, false
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"sts.us-east-1.amazonaws.com", "*.s3.amazonaws.com:443", "*.amazonaws.com", "x:1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		r, err := Parse(in)
		if err != nil {
			return
		}
		for _, h := range []string{"bedrock-runtime.us-east-1.amazonaws.com", "vpce-1.bedrock-runtime.us-east-1.vpce.amazonaws.com",
			"bedrock-runtime.us-east-1.api.aws", "bedrock-runtime.cn-north-1.amazonaws.com.cn"} {
			if r.Matches(h, 443) {
				t.Fatalf("tunnel %q (%+v) covers the Bedrock host %s", in, r, h)
			}
		}
	})
}
