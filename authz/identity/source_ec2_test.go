package identity

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/warden-egress/warden/bedrock/bedrocktest"
)

const (
	ec2TestKey    = "AKIAWARDENEC2TEST001"
	ec2TestSecret = "warden-ec2-secret"
)

func startEC2(t *testing.T, pageSize int) *bedrocktest.EC2Server {
	t.Helper()
	s := bedrocktest.NewEC2Server(bedrocktest.EC2Config{
		Region: "eu-west-1", Credentials: map[string]string{ec2TestKey: ec2TestSecret}, PageSize: pageSize, Logf: bedrocktest.TestLogf(t),
	})
	t.Cleanup(s.Close)
	s.PutENI(bedrocktest.ENI{
		ID: "eni-0aaa", OwnerID: "111122223333", VpcID: "vpc-1", PrivateIPs: []string{"10.0.1.10", "10.0.1.11"},
		IPv6: []string{"2600:1f18::10"}, InstanceID: "i-0123456789abcdef0",
		Tags: map[string]string{"team": "search", "env": "prod", "Name": "web-1"},
	})
	s.PutENI(bedrocktest.ENI{ // an ECS awsvpc task ENI: no instance, requester-managed
		ID: "eni-0bbb", OwnerID: "111122223333", PrivateIPs: []string{"10.0.2.20"},
		Description: "arn:aws:ecs:eu-west-1:111122223333:attachment/1f2e3d4c", RequesterManaged: true, RequesterID: "578734482556",
	})
	return s
}

// ec2Source builds the source as NewResolver does, from a parsed config;
// its verifier sweeps until the test ends.
func ec2Source(t *testing.T, s *bedrocktest.EC2Server, ec2yaml string) *EC2Source {
	t.Helper()
	return ec2SourceCtx(t.Context(), t, s, ec2yaml)
}

// ec2SourceNoSweep is ec2Source without the background verifier, for tests
// that run its sweeps themselves.
func ec2SourceNoSweep(t *testing.T, s *bedrocktest.EC2Server, ec2yaml string) *EC2Source {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ec2SourceCtx(ctx, t, s, ec2yaml)
}

func ec2SourceCtx(ctx context.Context, t *testing.T, s *bedrocktest.EC2Server, ec2yaml string) *EC2Source {
	t.Helper()
	y := strings.Replace(ec2Base, "ec2: {}", "ec2: {endpoint: \""+s.URL+"\""+ec2yaml+"}", 1)
	cfg, err := parseIdentity([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	deps := Deps{AWS: aws.Config{Region: "eu-west-1", Credentials: credentials.NewStaticCredentialsProvider(ec2TestKey, ec2TestSecret, "")}}
	src, err := newEC2Source(ctx, cfg.Identity.EC2, deps)
	if err != nil {
		t.Fatal(err)
	}
	return src.(*EC2Source)
}

func ec2ConnFrom(addr string) *Conn {
	return &Conn{Remote: netip.AddrPortFrom(netip.MustParseAddr(addr), 40000)}
}

func TestEC2SourceResolves(t *testing.T) {
	s := startEC2(t, 0)
	src := ec2Source(t, s, "")
	id, err := src.Resolve(context.Background(), ec2ConnFrom("10.0.1.11")) // a secondary address
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Tag{
		TagAWSENI:                StrongTag("ec2", "eni-0aaa"),
		TagAWSAccount:            StrongTag("ec2", "111122223333"),
		TagAWSInstance:           StrongTag("ec2", "i-0123456789abcdef0"),
		TagAWSRegion:             StrongTag("ec2", "eu-west-1"),
		TagAWSVPC:                StrongTag("ec2", "vpc-1"),
		TagAWSTagPrefix + "team": WeakTag("ec2", "search"),
		TagAWSTagPrefix + "env":  WeakTag("ec2", "prod"),
		TagAWSTagPrefix + "Name": WeakTag("ec2", "web-1"),
	}
	if len(id.Tags) != len(want) || id.Source != "ec2" || id.Stale {
		t.Fatalf("identity %+v", id)
	}
	for k, w := range want {
		if id.Tags[k] != w {
			t.Errorf("%s = %+v, want %+v", k, id.Tags[k], w)
		}
		if IsWeakKey(k) == w.Strong {
			t.Errorf("%s: IsWeakKey disagrees with the tag's strength", k)
		}
	}
	if id.TagValues()["aws.tag.team"] != "search" {
		t.Fatal("tag values")
	}
	calls := s.Calls()
	if len(calls) != 1 || !calls[0].SignatureOK || calls[0].Form.Get("Filter.1.Name") != "addresses.private-ip-address" || calls[0].Form.Get("Filter.1.Value.1") != "10.0.1.11" {
		t.Fatalf("calls %+v", calls)
	}
	// Cached: no second call; a v4-mapped address is the same caller.
	if _, err := src.Resolve(context.Background(), &Conn{Remote: netip.MustParseAddrPort("[::ffff:10.0.1.11]:1")}); err != nil {
		t.Fatal(err)
	}
	if len(s.Calls()) != 1 {
		t.Fatal("not cached")
	}

	// The ECS task ENI names the account but carries no task ARN.
	id, err = src.Resolve(context.Background(), ec2ConnFrom("10.0.2.20"))
	if err != nil || id.Tags[TagAWSENI].Value != "eni-0bbb" || id.Tags[TagECSTaskARN].Value != "" || len(id.Tags) != 3 {
		t.Fatalf("ecs eni: %v %+v", err, id)
	}
}

func TestEC2SourceTagKeysAndIPv6(t *testing.T) {
	s := startEC2(t, 0)
	src := ec2Source(t, s, ", tag_keys: [team]")
	src.trusted, _ = ParseTrustedNets([]string{"10.0.0.0/16", "2600:1f18::/32"})
	id, err := src.Resolve(context.Background(), ec2ConnFrom("2600:1f18::10"))
	if err != nil {
		t.Fatal(err)
	}
	if id.Tags["aws.tag.team"].Value != "search" || id.Tags["aws.tag.env"].Value != "" || id.Tags[TagAWSENI].Value != "eni-0aaa" {
		t.Fatalf("identity %+v", id)
	}
	if c := s.Calls(); c[0].Form.Get("Filter.1.Name") != "ipv6-addresses.ipv6-address" {
		t.Fatalf("filter %v", c[0].Form)
	}
}

func TestEC2SourceUntrustedAndUnknown(t *testing.T) {
	s := startEC2(t, 0)
	src := ec2Source(t, s, ", negative_ttl: 1h")
	for _, c := range []*Conn{ec2ConnFrom("10.1.1.10"), ec2ConnFrom("192.168.0.1"), {}, nil} {
		if _, err := src.Resolve(context.Background(), c); !errors.Is(err, ErrNoIdentity) {
			t.Fatalf("untrusted %v: %v", c, err)
		}
	}
	if len(s.Calls()) != 0 {
		t.Fatal("an untrusted address was looked up")
	}
	for range 3 {
		if _, err := src.Resolve(context.Background(), ec2ConnFrom("10.0.9.9")); !errors.Is(err, ErrNoIdentity) {
			t.Fatalf("unknown: %v", err)
		}
	}
	if len(s.Calls()) != 1 {
		t.Fatalf("negative answer not cached: %d calls", len(s.Calls()))
	}
}

// TestEC2SourceAmbiguousAcrossPages: an address two ENIs hold (on
// different pages) is refused, and the refusal denies through the resolver
// instead of falling through to a later source.
func TestEC2SourceAmbiguousAcrossPages(t *testing.T) {
	s := startEC2(t, 1)
	s.PutENI(bedrocktest.ENI{ID: "eni-0ccc", OwnerID: "444455556666", PrivateIPs: []string{"10.0.1.10"}})
	src := ec2Source(t, s, "")
	var re *RefusedError
	if _, err := src.Resolve(context.Background(), ec2ConnFrom("10.0.1.10")); !errors.As(err, &re) || re.Reason != RefusedShared ||
		errors.Is(err, ErrNoIdentity) || !strings.Contains(err.Error(), "eni-0aaa") || !strings.Contains(err.Error(), "eni-0ccc") {
		t.Fatalf("ambiguous address: %v, want a shared refusal naming both ENIs", err)
	}
	if len(s.Calls()) != 2 || s.Calls()[1].Form.Get("NextToken") == "" {
		t.Fatalf("not paginated: %+v", s.Calls())
	}
	r := &Resolver{sources: []Source{src, NewStaticSource(map[string]string{"app": "x"})}}
	if id, err := r.Resolve(context.Background(), ec2ConnFrom("10.0.1.10")); err == nil || errors.Is(err, ErrNoIdentity) {
		t.Fatalf("resolver fell through on a shared address: %v %v", err, id)
	}
	if n := src.Refusals()[RefusedShared]; n != 2 {
		t.Fatalf("shared refusals = %d, want 2", n)
	}
	// A lone match on a later page resolves.
	s.DeleteENI("eni-0aaa")
	s.PutENI(bedrocktest.ENI{ID: "eni-0000", OwnerID: "1", PrivateIPs: []string{"10.0.7.1"}})
	s.PutENI(bedrocktest.ENI{ID: "eni-0001", OwnerID: "1", PrivateIPs: []string{"10.0.7.2"}})
	src = ec2Source(t, s, "")
	if id, err := src.Resolve(context.Background(), ec2ConnFrom("10.0.1.10")); err != nil || id.Tags[TagAWSAccount].Value != "444455556666" {
		t.Fatalf("%v %+v", err, id)
	}
}

func TestEC2SourceOutage(t *testing.T) {
	s := startEC2(t, 0)
	src := ec2Source(t, s, ", cache_ttl: 100ms, negative_ttl: 1s, stale_ttl: 1m")
	ctx := context.Background()
	if _, err := src.Resolve(ctx, ec2ConnFrom("10.0.1.10")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(150 * time.Millisecond)
	s.SetOutage(http.StatusServiceUnavailable)
	id, err := src.Resolve(ctx, ec2ConnFrom("10.0.1.10"))
	if err != nil || !id.Stale || id.Tags[TagAWSAccount].Value != "111122223333" {
		t.Fatalf("warm outage: %v %+v", err, id)
	}
	if _, err := src.Resolve(ctx, ec2ConnFrom("10.0.2.20")); err == nil || errors.Is(err, ErrNoIdentity) || !strings.Contains(err.Error(), "Unavailable") {
		t.Fatalf("cold outage: %v", err)
	}
	s.SetOutage(-1)
	if _, err := src.Resolve(ctx, ec2ConnFrom("10.0.1.11")); err == nil || errors.Is(err, ErrNoIdentity) {
		t.Fatalf("cold outage (resets): %v", err)
	}
	if st := src.CacheStats(); st.StaleServes != 1 || st.LookupErrors != 3 {
		t.Fatalf("stats %+v", st)
	}
	// Through the resolver, an outage without a stale identity denies
	// rather than falling through to another source.
	r := &Resolver{sources: []Source{src, NewStaticSource(map[string]string{"app": "x"})}}
	if _, err := r.Resolve(ctx, ec2ConnFrom("10.0.3.3")); err == nil || errors.Is(err, ErrNoIdentity) {
		t.Fatalf("resolver: %v", err)
	}
}

func TestEC2SourceNeedsValidatedConfig(t *testing.T) {
	_, err := newEC2Source(context.Background(), EC2Config{}, Deps{AWS: aws.Config{Region: "us-east-1"}})
	if err == nil || !strings.Contains(err.Error(), "trusted_cidrs") {
		t.Fatalf("unvalidated config: %v", err)
	}
	cfg := EC2Config{}
	cfg.trusted, _ = ParseTrustedNets([]string{"10.0.0.0/8"})
	if _, err := newEC2Source(context.Background(), cfg, Deps{}); err == nil || !strings.Contains(err.Error(), "region") {
		t.Fatalf("no region: %v", err)
	}
}

func BenchmarkEC2SourceWarm(b *testing.B) {
	src := NewEC2Source(nil, "us-east-1", EC2Config{}, nil)
	src.trusted, _ = ParseTrustedNets([]string{"10.0.0.0/8"})
	// As configured by default: answers re-verified (here: never due).
	src.cache = NewVerifiedIdentityCache(func(context.Context, string) (Identity, error) { return idFor("a"), nil },
		func(_ context.Context, keys []string, _ []Identity) ([]bool, error) {
			return make([]bool, len(keys)), nil
		},
		CacheOptions{VerifyAfter: time.Hour, TTL: 2 * time.Hour})
	c := ec2ConnFrom("10.0.1.10")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := src.Resolve(ctx, c); err != nil {
			b.Fatal(err)
		}
	}
}

// TestEC2SourceAddressMoves: an address released by one ENI and requested by
// another stops naming the first ENI within verify_after, long before
// cache_ttl: at call time when the answer is older than verify_after, and
// in the background sweep, which checks every address in use in one call.
func TestEC2SourceAddressMoves(t *testing.T) {
	s := startEC2(t, 0)
	s.PutENI(bedrocktest.ENI{ID: "eni-0ccc", OwnerID: "444455556666", PrivateIPs: []string{"10.0.3.30"}, Tags: map[string]string{"team": "intruder"}})
	src := ec2SourceNoSweep(t, s, ", cache_ttl: 1h, verify_after: 100ms")
	ctx := context.Background()
	eniOf := func(ip string) string {
		id, err := src.Resolve(ctx, ec2ConnFrom(ip))
		if err != nil {
			return "error: " + err.Error()
		}
		return id.Tags[TagAWSENI].Value
	}
	if got := eniOf("10.0.1.10"); got != "eni-0aaa" {
		t.Fatalf("before: %s", got)
	}

	// At call time: the address moves; once the answer is older than
	// verify_after the caller is named after its new ENI.
	s.MovePrivateIP("10.0.1.10", "eni-0ccc")
	k8sEventually(t, "moved address", func() string {
		if got := eniOf("10.0.1.10"); got != "eni-0ccc" {
			return "still " + got
		}
		return ""
	})

	// The sweep: two addresses in use are checked in one call; one of them
	// has moved and is dropped, the other stays fresh.
	if got := eniOf("10.0.2.20"); got != "eni-0bbb" {
		t.Fatalf("ecs eni: %s", got)
	}
	s.MovePrivateIP("10.0.1.10", "eni-0aaa")
	s.ResetCalls()
	if err := src.cache.Verify(ctx); err != nil {
		t.Fatal(err)
	}
	calls := s.Calls()
	if len(calls) != 1 || calls[0].Form.Get("Filter.1.Name") != "addresses.private-ip-address" || calls[0].Form.Get("Filter.1.Value.2") == "" {
		t.Fatalf("sweep calls %+v, want one call for both addresses", calls)
	}
	if st := src.cache.Stats(); st.Invalidated != 1 || st.Verified != 1 {
		t.Fatalf("stats after sweep %+v, want 1 verified and 1 invalidated", st)
	}
	if got := eniOf("10.0.1.10"); got != "eni-0aaa" {
		t.Fatalf("after sweep: %s", got)
	}

	// An address in use that a second ENI is given while cached: the next
	// sweep drops it, and it is refused, not served.
	s.AssignPrivateIP("eni-0ccc", "10.0.2.20")
	eniOf("10.0.2.20") // in use: eni-0bbb within verify_after (or, on a slow machine, already refused)
	if err := src.cache.Verify(ctx); err != nil {
		t.Fatal(err)
	}
	var re *RefusedError
	if _, err := src.Resolve(ctx, ec2ConnFrom("10.0.2.20")); !errors.As(err, &re) || re.Reason != RefusedShared {
		t.Fatalf("address given to a second ENI: %v, want a shared refusal", err)
	}
}

func TestEC2VerifyAfterConfig(t *testing.T) {
	for _, tc := range []struct {
		yaml string
		want time.Duration // VerifyAfter in effect
		err  string
	}{
		{"", DefaultEC2VerifyAfter, ""},
		{", verify_after: 1s", time.Second, ""},
		{", cache_ttl: 2s", 0, ""}, // shorter than the default: the lookup at cache_ttl is the check
		{", cache_ttl: 10s, verify_after: 10s", 0, ""},
		{", verify_after: 2m", 0, "verify_after (2m0s) is longer than cache_ttl"},
		{", verify_after: -1s", 0, "verify_after: must not be negative"},
	} {
		cfg, err := parseIdentity([]byte(strings.Replace(ec2Base, "ec2: {}", "ec2: {region: eu-west-1"+tc.yaml+"}", 1)))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: %v, want %q", tc.yaml, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.yaml, err)
			continue
		}
		if got := cfg.Identity.EC2.cacheOptions().VerifyAfter; got != tc.want {
			t.Errorf("%q: verify_after in effect %s, want %s", tc.yaml, got, tc.want)
		}
	}
}
