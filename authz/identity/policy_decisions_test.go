package identity_test

// Sources' answers as the policy sees them: these tests need package policy,
// which imports identity, so they live in the external test package.

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/warden-egress/warden/authz/identity"
	"github.com/warden-egress/warden/authz/policy"
	"github.com/warden-egress/warden/bedrock"
	"github.com/warden-egress/warden/config"
)

func TestNewResolverWithEC2(t *testing.T) {
	s := identity.StartEC2(t, 0)
	cfg, err := config.ParseConfig([]byte(strings.Replace(identity.EC2Base, "ec2: {}", "ec2: {endpoint: \""+s.URL+"\", region: eu-west-1}", 1)))
	if err != nil {
		t.Fatal(err)
	}
	r, err := identity.NewResolver(context.Background(), cfg.Identity, identity.Deps{AWS: aws.Config{Credentials: credentials.NewStaticCredentialsProvider(identity.EC2TestKey, identity.EC2TestSecret, "")}})
	if err != nil {
		t.Fatal(err)
	}
	id, err := r.Resolve(context.Background(), identity.EC2ConnFrom("10.0.1.10"))
	if err != nil || id.Tags[identity.TagAWSENI].Value != "eni-0aaa" {
		t.Fatalf("%v %+v", err, id)
	}
	p, err := policy.NewPolicy(cfg.Apps)
	if err != nil {
		t.Fatal(err)
	}
	m, err := bedrock.ParseModelID("anthropic.claude-3-5-haiku-20241022-v1:0")
	if err != nil {
		t.Fatal(err)
	}
	if d := p.Decide(id, policy.Call{Op: bedrock.OpConverse, Model: &m}); !d.Allow || d.App != "a" {
		t.Fatalf("decision %+v", d)
	}
}

// TestEC2SourceUnverifiedIsStale: past verify_after, an answer the EC2 API
// cannot confirm is served marked stale (refuse_stale_identity denies it),
// not as fresh until cache_ttl.
func TestEC2SourceUnverifiedIsStale(t *testing.T) {
	s := identity.StartEC2(t, 0)
	src := identity.EC2SourceFor(t, s, ", cache_ttl: 1h, verify_after: 50ms")
	ctx := context.Background()
	if id, err := src.Resolve(ctx, identity.EC2ConnFrom("10.0.1.10")); err != nil || id.Stale {
		t.Fatalf("fresh: %v %+v", err, id)
	}
	s.SetOutage(http.StatusServiceUnavailable)
	time.Sleep(100 * time.Millisecond) // past verify_after, far from cache_ttl
	id, err := src.Resolve(ctx, identity.EC2ConnFrom("10.0.1.10"))
	if err != nil || !id.Stale || id.Tags[identity.TagAWSENI].Value != "eni-0aaa" {
		t.Fatalf("unverified answer: %v stale=%v, want the last identity marked stale", err, id.Stale)
	}
	p, err := policy.NewPolicy([]policy.AppConfig{{Name: "a", RefuseStaleIdentity: true, Match: policy.MatchConfig{Tags: map[string]string{identity.TagAWSAccount: "111122223333"}},
		Allow: policy.AllowConfig{Models: []string{"*"}, Operations: []string{"Converse"}}}})
	if err != nil {
		t.Fatal(err)
	}
	m, _ := bedrock.ParseModelID("anthropic.claude-3-5-haiku-20241022-v1:0")
	if d := p.Decide(id, policy.Call{Op: bedrock.OpConverse, Model: &m}); d.Allow {
		t.Fatalf("refuse_stale_identity allowed an unverified identity: %+v", d)
	}
	s.SetOutage(0)
	identity.K8sEventually(t, "verified again", func() string {
		id, err := src.Resolve(ctx, identity.EC2ConnFrom("10.0.1.10"))
		if err != nil || id.Stale {
			return fmt.Sprintf("%v stale=%v", err, id.Stale)
		}
		return ""
	})
}
