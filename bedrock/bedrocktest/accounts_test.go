package bedrocktest_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"

	"github.com/warden-egress/warden/bedrock/bedrocktest"
)

const (
	hubAccount   = "111111111111"
	spokeAccount = "222222222222"
	hubKey       = "AKIAHUBTEST000000001"
	hubSecret    = "hub-secret"
	spokeRole    = "arn:aws:iam::222222222222:role/warden-identity"
)

// accounts starts EC2, STS and ECS emulators sharing one IAM: a hub
// account (Warden's, owning an endpoint service) and a spoke account whose
// role trusts the hub with an external id.
func accounts(t *testing.T) (*bedrocktest.IAM, *bedrocktest.EC2Server, *bedrocktest.STSServer, *bedrocktest.ECSServer) {
	t.Helper()
	iam := bedrocktest.NewIAM()
	iam.AddUser(hubAccount, "warden", hubKey, hubSecret)
	iam.AddRole(bedrocktest.IAMRole{ARN: spokeRole, TrustedPrincipals: []string{hubAccount}, ExternalID: "ext-123"})
	e := bedrocktest.NewEC2Server(bedrocktest.EC2Config{IAM: iam, Logf: t.Logf})
	t.Cleanup(e.Close)
	s := bedrocktest.NewSTSServer(bedrocktest.STSConfig{IAM: iam, Logf: t.Logf})
	t.Cleanup(s.Close)
	c := bedrocktest.NewECSServer(bedrocktest.ECSConfig{IAM: iam, Logf: t.Logf})
	t.Cleanup(c.Close)
	e.PutENI(bedrocktest.ENI{ID: "eni-hub", OwnerID: hubAccount, VpcID: "vpc-hub", PrivateIPs: []string{"10.0.0.5"}})
	e.PutENI(bedrocktest.ENI{ID: "eni-spoke", OwnerID: spokeAccount, VpcID: "vpc-spoke", SubnetID: "subnet-s", PrivateIPs: []string{"10.0.0.5"},
		Description: "arn:aws:ecs:us-east-1:222222222222:attachment/att-1", RequesterManaged: true})
	e.PutVPCEndpoint(bedrocktest.VPCEndpoint{ID: "vpce-0spoke0000000001", OwnerID: spokeAccount, VpcID: "vpc-spoke", SubnetIDs: []string{"subnet-s"},
		ServiceID: "vpce-svc-0hub", ServiceName: "com.amazonaws.vpce.us-east-1.vpce-svc-0hub", ServiceOwnerID: hubAccount})
	return iam, e, s, c
}

func hubCreds() aws.CredentialsProvider {
	return credentials.NewStaticCredentialsProvider(hubKey, hubSecret, "")
}

func assumed(s *bedrocktest.STSServer, externalID string) aws.CredentialsProvider {
	client := sts.New(sts.Options{Region: "us-east-1", BaseEndpoint: aws.String(s.URL), Credentials: hubCreds()})
	return aws.NewCredentialsCache(stscreds.NewAssumeRoleProvider(client, spokeRole, func(o *stscreds.AssumeRoleOptions) {
		o.ExternalID = aws.String(externalID)
		o.RoleSessionName = "warden-identity"
	}))
}

func ec2With(e *bedrocktest.EC2Server, creds aws.CredentialsProvider) *ec2.Client {
	return ec2.New(ec2.Options{Region: "us-east-1", BaseEndpoint: aws.String(e.URL), Credentials: creds})
}

func eniIDs(t *testing.T, c *ec2.Client) []string {
	t.Helper()
	out, err := c.DescribeNetworkInterfaces(context.Background(), &ec2.DescribeNetworkInterfacesInput{
		Filters: []ec2types.Filter{{Name: aws.String("addresses.private-ip-address"), Values: []string{"10.0.0.5"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, n := range out.NetworkInterfaces {
		ids = append(ids, aws.ToString(n.NetworkInterfaceId))
	}
	return ids
}

// The same address in two accounts: each caller sees its own account's
// interface, the spoke's through a role assumed with its external id.
func TestAccountsAssumeRoleSeesOwnAccount(t *testing.T) {
	_, e, s, _ := accounts(t)
	if ids := eniIDs(t, ec2With(e, hubCreds())); strings.Join(ids, ",") != "eni-hub" {
		t.Fatalf("hub sees %v", ids)
	}
	if ids := eniIDs(t, ec2With(e, assumed(s, "ext-123"))); strings.Join(ids, ",") != "eni-spoke" {
		t.Fatalf("spoke role sees %v", ids)
	}
	calls := s.Calls()
	if len(calls) != 1 || calls[0].Action != "AssumeRole" || !calls[0].SignatureOK || calls[0].ExternalID != "ext-123" || calls[0].Status != 200 {
		t.Fatalf("sts calls %+v", calls)
	}
	last := e.Calls()[len(e.Calls())-1]
	if !strings.HasPrefix(last.AccessKeyID, "ASIA") || last.Account != spokeAccount || !last.SignatureOK {
		t.Fatalf("ec2 call with the assumed key: %+v", last)
	}
}

func TestAccountsAssumeRoleRefusals(t *testing.T) {
	iam, e, s, _ := accounts(t)
	ctx := context.Background()
	var ae smithy.APIError
	// A wrong external id: AccessDenied from STS, so no EC2 call at all.
	_, err := ec2With(e, assumed(s, "wrong")).DescribeNetworkInterfaces(ctx, &ec2.DescribeNetworkInterfacesInput{})
	if err == nil || !errors.As(err, &ae) || ae.ErrorCode() != "AccessDenied" {
		t.Fatalf("wrong external id: %v", err)
	}
	// A principal the role does not trust.
	iam.AddUser("333333333333", "other", "AKIAOTHER00000000001", "other-secret")
	client := sts.New(sts.Options{Region: "us-east-1", BaseEndpoint: aws.String(s.URL),
		Credentials: credentials.NewStaticCredentialsProvider("AKIAOTHER00000000001", "other-secret", "")})
	_, err = client.AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: aws.String(spokeRole), RoleSessionName: aws.String("x1"), ExternalId: aws.String("ext-123")})
	if err == nil || !errors.As(err, &ae) || ae.ErrorCode() != "AccessDenied" {
		t.Fatalf("untrusted principal: %v", err)
	}
	// Issued keys need their session token.
	out, err := sts.New(sts.Options{Region: "us-east-1", BaseEndpoint: aws.String(s.URL), Credentials: hubCreds()}).AssumeRole(ctx,
		&sts.AssumeRoleInput{RoleArn: aws.String(spokeRole), RoleSessionName: aws.String("s1"), ExternalId: aws.String("ext-123")})
	if err != nil {
		t.Fatal(err)
	}
	c := out.Credentials
	for name, token := range map[string]string{"no token": "", "forged token": "Zm9yZ2Vk"} {
		_, err = ec2With(e, credentials.NewStaticCredentialsProvider(*c.AccessKeyId, *c.SecretAccessKey, token)).
			DescribeNetworkInterfaces(ctx, &ec2.DescribeNetworkInterfacesInput{})
		if err == nil || !errors.As(err, &ae) || ae.ErrorCode() != "AuthFailure" {
			t.Errorf("%s: %v", name, err)
		}
	}
	if arn := aws.ToString(out.AssumedRoleUser.Arn); arn != "arn:aws:sts::222222222222:assumed-role/warden-identity/s1" {
		t.Errorf("assumed role arn %s", arn)
	}
}

// The endpoint service owner learns who connected; the endpoint owner
// learns the endpoint's VPC; neither sees the other's view.
func TestAccountsVPCEndpoints(t *testing.T) {
	_, e, s, _ := accounts(t)
	ctx := context.Background()
	hub, spoke := ec2With(e, hubCreds()), ec2With(e, assumed(s, "ext-123"))
	conns, err := hub.DescribeVpcEndpointConnections(ctx, &ec2.DescribeVpcEndpointConnectionsInput{
		Filters: []ec2types.Filter{{Name: aws.String("vpc-endpoint-id"), Values: []string{"vpce-0spoke0000000001"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(conns.VpcEndpointConnections) != 1 {
		t.Fatalf("connections %+v", conns.VpcEndpointConnections)
	}
	cn := conns.VpcEndpointConnections[0]
	if aws.ToString(cn.VpcEndpointOwner) != spokeAccount || aws.ToString(cn.ServiceId) != "vpce-svc-0hub" || cn.VpcEndpointState != "available" {
		t.Fatalf("connection %+v", cn)
	}
	if other, err := spoke.DescribeVpcEndpointConnections(ctx, &ec2.DescribeVpcEndpointConnectionsInput{}); err != nil || len(other.VpcEndpointConnections) != 0 {
		t.Fatalf("the spoke owns no service: %+v %v", other, err)
	}
	eps, err := spoke.DescribeVpcEndpoints(ctx, &ec2.DescribeVpcEndpointsInput{VpcEndpointIds: []string{"vpce-0spoke0000000001"}})
	if err != nil || len(eps.VpcEndpoints) != 1 || aws.ToString(eps.VpcEndpoints[0].VpcId) != "vpc-spoke" ||
		strings.Join(eps.VpcEndpoints[0].SubnetIds, ",") != "subnet-s" {
		t.Fatalf("endpoints %+v %v", eps, err)
	}
	var ae smithy.APIError
	if _, err := hub.DescribeVpcEndpoints(ctx, &ec2.DescribeVpcEndpointsInput{VpcEndpointIds: []string{"vpce-0spoke0000000001"}}); !errors.As(err, &ae) ||
		ae.ErrorCode() != "InvalidVpcEndpointId.NotFound" {
		t.Fatalf("the hub does not own the endpoint: %v", err)
	}
}

func TestAccountsECSDescribeTasks(t *testing.T) {
	_, _, s, c := accounts(t)
	const cluster = "arn:aws:ecs:us-east-1:222222222222:cluster/apps"
	c.PutTask(bedrocktest.ECSTask{ARN: "arn:aws:ecs:us-east-1:222222222222:task/apps/0abc", ClusterARN: cluster,
		TaskDefinitionARN: "arn:aws:ecs:us-east-1:222222222222:task-definition/search:7", Group: "service:search",
		ENI: "eni-spoke", PrivateIP: "10.0.0.5", AttachmentID: "att-1"})
	c.PutTaskDefinition(bedrocktest.ECSTaskDefinition{ARN: "arn:aws:ecs:us-east-1:222222222222:task-definition/search:7",
		TaskRoleARN: "arn:aws:iam::222222222222:role/search-task"})
	ctx := context.Background()
	client := ecs.New(ecs.Options{Region: "us-east-1", BaseEndpoint: aws.String(c.URL), Credentials: assumed(s, "ext-123")})
	cl, err := client.ListClusters(ctx, &ecs.ListClustersInput{})
	if err != nil || strings.Join(cl.ClusterArns, ",") != cluster {
		t.Fatalf("clusters %+v %v", cl, err)
	}
	lt, err := client.ListTasks(ctx, &ecs.ListTasksInput{Cluster: aws.String(cluster)})
	if err != nil || len(lt.TaskArns) != 1 {
		t.Fatalf("tasks %+v %v", lt, err)
	}
	dt, err := client.DescribeTasks(ctx, &ecs.DescribeTasksInput{Cluster: aws.String(cluster), Tasks: append(lt.TaskArns, "missing")})
	if err != nil || len(dt.Tasks) != 1 || len(dt.Failures) != 1 {
		t.Fatalf("describe %+v %v", dt, err)
	}
	task := dt.Tasks[0]
	var eni string
	for _, d := range task.Attachments[0].Details {
		if aws.ToString(d.Name) == "networkInterfaceId" {
			eni = aws.ToString(d.Value)
		}
	}
	if eni != "eni-spoke" || aws.ToString(task.Group) != "service:search" || aws.ToString(task.Attachments[0].Id) != "att-1" {
		t.Fatalf("task %+v", task)
	}
	td, err := client.DescribeTaskDefinition(ctx, &ecs.DescribeTaskDefinitionInput{TaskDefinition: task.TaskDefinitionArn})
	if err != nil || aws.ToString(td.TaskDefinition.TaskRoleArn) != "arn:aws:iam::222222222222:role/search-task" || td.TaskDefinition.Revision != 7 {
		t.Fatalf("task definition %+v %v", td, err)
	}
	// The hub's own key sees nothing of the spoke's.
	hub := ecs.New(ecs.Options{Region: "us-east-1", BaseEndpoint: aws.String(c.URL), Credentials: hubCreds()})
	if cl, err := hub.ListClusters(ctx, &ecs.ListClustersInput{}); err != nil || len(cl.ClusterArns) != 0 {
		t.Fatalf("hub clusters %+v %v", cl, err)
	}
	// A bad signature is refused.
	bad := ecs.New(ecs.Options{Region: "us-east-1", BaseEndpoint: aws.String(c.URL), Credentials: credentials.NewStaticCredentialsProvider(hubKey, "wrong", "")})
	var ae smithy.APIError
	if _, err := bad.ListClusters(ctx, &ecs.ListClustersInput{}); !errors.As(err, &ae) || ae.ErrorCode() != "InvalidSignatureException" {
		t.Fatalf("bad signature: %v", err)
	}
}
