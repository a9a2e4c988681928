package bedrocktest_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"

	"github.com/warden-egress/warden/bedrock/bedrocktest"
)

const (
	ec2Key    = "AKIAEC2TEST000000001"
	ec2Secret = "ec2-test-secret"
)

func newEC2(t *testing.T, cfg bedrocktest.EC2Config) (*bedrocktest.EC2Server, *ec2.Client) {
	t.Helper()
	if cfg.Credentials == nil {
		cfg.Credentials = map[string]string{ec2Key: ec2Secret}
	}
	cfg.Logf = t.Logf
	s := bedrocktest.NewEC2Server(cfg)
	t.Cleanup(s.Close)
	return s, ec2Client(s, ec2Key, ec2Secret)
}

func ec2Client(s *bedrocktest.EC2Server, key, secret string) *ec2.Client {
	return ec2.New(ec2.Options{
		Region:           "us-east-1",
		BaseEndpoint:     aws.String(s.URL),
		Credentials:      credentials.NewStaticCredentialsProvider(key, secret, ""),
		RetryMaxAttempts: 1,
	})
}

func byIP(ip string) *ec2.DescribeNetworkInterfacesInput {
	return &ec2.DescribeNetworkInterfacesInput{Filters: []ec2types.Filter{{Name: aws.String("addresses.private-ip-address"), Values: []string{ip}}}}
}

func TestEC2DescribeNetworkInterfacesWithSDK(t *testing.T) {
	s, c := newEC2(t, bedrocktest.EC2Config{})
	s.PutENI(bedrocktest.ENI{
		ID: "eni-0a1b2c3d4e5f60001", OwnerID: "111122223333", VpcID: "vpc-1", SubnetID: "subnet-1",
		PrivateIPs: []string{"10.0.1.10", "10.0.1.11"}, IPv6: []string{"2600:1f18::10"},
		InstanceID: "i-0123456789abcdef0", Tags: map[string]string{"team": "search", "Name": "web"},
	})
	s.PutENI(bedrocktest.ENI{ID: "eni-0a1b2c3d4e5f60002", OwnerID: "111122223333", PrivateIPs: []string{"10.0.2.20"},
		Description: "arn:aws:ecs:us-east-1:111122223333:attachment/0f9e", InterfaceType: "interface", RequesterManaged: true, RequesterID: "578734482556"})

	// A secondary address finds the interface.
	out, err := c.DescribeNetworkInterfaces(context.Background(), byIP("10.0.1.11"))
	if err != nil {
		t.Fatal(err)
	}
	if len(out.NetworkInterfaces) != 1 {
		t.Fatalf("got %d interfaces", len(out.NetworkInterfaces))
	}
	ni := out.NetworkInterfaces[0]
	if aws.ToString(ni.NetworkInterfaceId) != "eni-0a1b2c3d4e5f60001" || aws.ToString(ni.OwnerId) != "111122223333" ||
		aws.ToString(ni.PrivateIpAddress) != "10.0.1.10" || len(ni.PrivateIpAddresses) != 2 ||
		ni.Attachment == nil || aws.ToString(ni.Attachment.InstanceId) != "i-0123456789abcdef0" ||
		ni.InterfaceType != ec2types.NetworkInterfaceTypeInterface || ni.Status != ec2types.NetworkInterfaceStatusInUse ||
		len(ni.Ipv6Addresses) != 1 || aws.ToString(ni.Ipv6Addresses[0].Ipv6Address) != "2600:1f18::10" {
		t.Fatalf("decoded %+v", ni)
	}
	tags := map[string]string{}
	for _, tg := range ni.TagSet {
		tags[aws.ToString(tg.Key)] = aws.ToString(tg.Value)
	}
	if tags["team"] != "search" || tags["Name"] != "web" || len(tags) != 2 {
		t.Fatalf("tags %v", tags)
	}

	// Requester-managed (ECS) interfaces decode too.
	out, err = c.DescribeNetworkInterfaces(context.Background(), byIP("10.0.2.20"))
	if err != nil || len(out.NetworkInterfaces) != 1 || !aws.ToBool(out.NetworkInterfaces[0].RequesterManaged) ||
		!strings.Contains(aws.ToString(out.NetworkInterfaces[0].Description), ":attachment/") {
		t.Fatalf("ecs eni: %v %+v", err, out)
	}

	// No match is an empty set, not an error.
	out, err = c.DescribeNetworkInterfaces(context.Background(), byIP("10.9.9.9"))
	if err != nil || len(out.NetworkInterfaces) != 0 {
		t.Fatalf("no match: %v %+v", err, out)
	}

	calls := s.Calls()
	if len(calls) != 3 || calls[0].Action != "DescribeNetworkInterfaces" || !calls[0].SignatureOK || calls[0].AccessKeyID != ec2Key ||
		calls[0].Form.Get("Filter.1.Name") != "addresses.private-ip-address" || calls[0].Form.Get("Filter.1.Value.1") != "10.0.1.11" ||
		calls[0].Form.Get("Version") != "2016-11-15" || calls[0].Status != http.StatusOK {
		t.Fatalf("calls %+v", calls)
	}
}

func TestEC2Pagination(t *testing.T) {
	s, c := newEC2(t, bedrocktest.EC2Config{PageSize: 2})
	for i := range 5 {
		s.PutENI(bedrocktest.ENI{ID: fmt.Sprintf("eni-%017d", i), OwnerID: "111122223333", PrivateIPs: []string{"10.0.0.1"}, Tags: map[string]string{"n": fmt.Sprint(i)}})
	}
	p := ec2.NewDescribeNetworkInterfacesPaginator(c, byIP("10.0.0.1"))
	var ids []string
	pages := 0
	for p.HasMorePages() {
		out, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, ni := range out.NetworkInterfaces {
			ids = append(ids, aws.ToString(ni.NetworkInterfaceId))
		}
	}
	if pages != 3 || len(ids) != 5 {
		t.Fatalf("%d pages, ids %v", pages, ids)
	}
	// MaxResults is honoured and bounded as on AWS.
	out, err := c.DescribeNetworkInterfaces(context.Background(), &ec2.DescribeNetworkInterfacesInput{MaxResults: aws.Int32(5)})
	if err != nil || len(out.NetworkInterfaces) != 5 || out.NextToken != nil {
		t.Fatalf("max results: %v %+v", err, out)
	}
	_, err = c.DescribeNetworkInterfaces(context.Background(), &ec2.DescribeNetworkInterfacesInput{MaxResults: aws.Int32(2)})
	wantAPIError(t, err, "InvalidParameterValue")
}

func wantAPIError(t *testing.T, err error, code string) {
	t.Helper()
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("error %v is not an API error", err)
	}
	if ae.ErrorCode() != code {
		t.Fatalf("error code %q (%v), want %q", ae.ErrorCode(), err, code)
	}
}

func TestEC2Errors(t *testing.T) {
	s, c := newEC2(t, bedrocktest.EC2Config{})
	s.PutENI(bedrocktest.ENI{ID: "eni-1", PrivateIPs: []string{"10.0.0.1"}})

	_, err := ec2Client(s, ec2Key, "wrong").DescribeNetworkInterfaces(context.Background(), byIP("10.0.0.1"))
	wantAPIError(t, err, "SignatureDoesNotMatch")
	_, err = ec2Client(s, "AKIAUNKNOWN000000000", "x").DescribeNetworkInterfaces(context.Background(), byIP("10.0.0.1"))
	wantAPIError(t, err, "AuthFailure")

	_, err = c.DescribeNetworkInterfaces(context.Background(), &ec2.DescribeNetworkInterfacesInput{
		Filters: []ec2types.Filter{{Name: aws.String("no-such-filter"), Values: []string{"x"}}}})
	wantAPIError(t, err, "InvalidParameterValue")

	s.SetOutage(http.StatusServiceUnavailable)
	_, err = c.DescribeNetworkInterfaces(context.Background(), byIP("10.0.0.1"))
	wantAPIError(t, err, "Unavailable")
	var re interface{ HTTPStatusCode() int }
	if !errors.As(err, &re) || re.HTTPStatusCode() != 503 {
		t.Fatalf("status of %v", err)
	}
	s.SetOutage(http.StatusInternalServerError)
	_, err = c.DescribeNetworkInterfaces(context.Background(), byIP("10.0.0.1"))
	wantAPIError(t, err, "InternalError")
	s.SetOutage(-1)
	if _, err = c.DescribeNetworkInterfaces(context.Background(), byIP("10.0.0.1")); err == nil {
		t.Fatal("reset connection succeeded")
	}
	s.SetOutage(0)
	s.FailNext(http.StatusTooManyRequests)
	_, err = c.DescribeNetworkInterfaces(context.Background(), byIP("10.0.0.1"))
	wantAPIError(t, err, "RequestLimitExceeded")
	if out, err := c.DescribeNetworkInterfaces(context.Background(), byIP("10.0.0.1")); err != nil || len(out.NetworkInterfaces) != 1 {
		t.Fatalf("after the outage: %v", err)
	}

	// Default SDK retries ride out one 503.
	s.FailNext(http.StatusServiceUnavailable)
	retrying := ec2.New(ec2.Options{Region: "us-east-1", BaseEndpoint: aws.String(s.URL), Credentials: credentials.NewStaticCredentialsProvider(ec2Key, ec2Secret, "")})
	if _, err := retrying.DescribeNetworkInterfaces(context.Background(), byIP("10.0.0.1")); err != nil {
		t.Fatalf("retry: %v", err)
	}
	s.DeleteENI("eni-1")
	if out, err := c.DescribeNetworkInterfaces(context.Background(), byIP("10.0.0.1")); err != nil || len(out.NetworkInterfaces) != 0 {
		t.Fatalf("deleted eni: %v %+v", err, out)
	}
}
