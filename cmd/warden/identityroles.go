package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/warden-egress/warden/authz/identity"
)

// `warden policy identity-roles` turns a central Warden's identity.ec2
// section into the IAM it needs (docs/identity.md, "A central Warden for
// many VPCs and accounts"):
//
//   - Warden's own identity policy (the hub role): sts:AssumeRole on each
//     spoke's role, ec2:DescribeVpcEndpointConnections for the endpoint
//     service, and the reads of its own account's interfaces (and ECS
//     tasks with ecs_tasks);
//   - each spoke role's trust policy: only Warden's roles (by
//     aws:PrincipalArn) of the hub account, only with the account's
//     external id;
//   - the spoke role's permissions: the interface and endpoint reads, and
//     the ECS task index's reads with ecs_tasks. ecs:DescribeTasks is
//     narrowed to the account's tasks (of the listed ecs_clusters, when
//     there are some) and ecs:ListTasks to those clusters by the ecs:cluster
//     condition key; ec2:Describe*, ecs:DescribeTaskDefinition and
//     ecs:ListClusters support no resource-level permissions, so IAM takes
//     only Resource "*" for them (the output's notes say so).
//
// deploy/iam/central-*.json are this command's output for
// deploy/examples/warden-central.yaml (TestDeployIAMPoliciesGenerated).

const identityRolesUsage = `  warden policy identity-roles --config FILE --principal ARN [--principal ARN …]
        [--only hub|spoke-trust|spoke-role] [--spoke ACCOUNT]
        emit a central Warden's IAM from identity.ec2: its own identity policy (assume each spoke
        role, read endpoint connections and its own account's interfaces), and each spoke role's
        trust policy (Warden's roles only, with the account's external id) and permissions
        (ECS task reads narrowed to the account and its ecs_clusters; ec2:Describe*,
        ecs:DescribeTaskDefinition and ecs:ListClusters take only Resource "*" in IAM)
`

// The identity source's AWS calls (authz/identity/source_ec2*.go).
var (
	interfaceReads = []string{"ec2:DescribeNetworkInterfaces", "ec2:DescribeVpcEndpoints"}
	ecsTaskReads   = []string{"ecs:DescribeTaskDefinition", "ecs:DescribeTasks", "ecs:ListClusters", "ecs:ListTasks"}
)

// resourceStarNote is the output's note on the reads left at Resource "*".
const resourceStarNote = `ec2:DescribeNetworkInterfaces, ec2:DescribeVpcEndpoints, ec2:DescribeVpcEndpointConnections, ` +
	`ecs:DescribeTaskDefinition and ecs:ListClusters support no resource-level permissions: IAM accepts only ` +
	`Resource "*" for them (the Service Authorization Reference), so each role grants them account-wide, read-only. ` +
	`ecs:DescribeTasks is narrowed to the account's tasks (of its ecs_clusters when listed) and ecs:ListTasks to ` +
	`those clusters by the ecs:cluster condition key.`

// trustPolicy is a role's trust policy (its statements have no Resource).
type trustPolicy struct {
	Version   string           `json:"Version"`
	Statement []trustStatement `json:"Statement"`
}

type trustStatement struct {
	Sid       string                    `json:"Sid"`
	Effect    string                    `json:"Effect"`
	Principal map[string][]string       `json:"Principal"`
	Action    []string                  `json:"Action"`
	Condition map[string]map[string]any `json:"Condition"`
}

// spokeRole is one spoke account's role: its trust and permissions.
type spokeRole struct {
	Account     string       `json:"account"`
	RoleARN     string       `json:"role_arn"`
	TrustPolicy *trustPolicy `json:"trust_policy"`
	RolePolicy  *iamPolicy   `json:"role_policy"`
}

type identityRolesOutput struct {
	WardenIdentityPolicy *iamPolicy  `json:"warden_identity_policy"`
	SpokeRoles           []spokeRole `json:"spoke_roles"`
	Notes                []string    `json:"notes"`
}

func cmdPolicyIdentityRoles(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("policy identity-roles", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "configuration file (YAML)")
	var principals listFlag
	fs.Var(&principals, "principal", "ARN of a role the central Warden runs as (repeatable; * and ? allowed, e.g. arn:aws:iam::A:role/warden/*)")
	only := fs.String("only", "", "print only one policy: hub, spoke-trust or spoke-role")
	spoke := fs.String("spoke", "", "with --only spoke-trust|spoke-role: the spoke account (default: the first listed with a role)")
	if err := parsePolicyFlags(fs, args, path); err != nil {
		return err
	}
	switch *only {
	case "", "hub", "spoke-trust", "spoke-role":
	default:
		return fmt.Errorf("--only %q: want hub, spoke-trust or spoke-role", *only)
	}
	if *spoke != "" && *only != "spoke-trust" && *only != "spoke-role" {
		return errors.New("--spoke needs --only spoke-trust or --only spoke-role")
	}
	if len(principals) == 0 {
		return errors.New("--principal is required (the ARN of the role the central Warden runs as)")
	}
	for _, p := range principals {
		if err := checkPrincipalARN("--principal", p); err != nil {
			return err
		}
	}
	cfg, _, err := loadPolicy(*path)
	if err != nil {
		return err
	}
	if !slices.Contains(cfg.Identity.Sources, identity.SourceEC2) {
		return fmt.Errorf("%s: identity.sources has no ec2: a central Warden's identity roles come from identity.ec2", *path)
	}
	out, err := identityRoles(cfg.Identity.EC2, principals)
	if err != nil {
		return fmt.Errorf("%s: %w", *path, err)
	}
	var v any = out
	switch *only {
	case "hub":
		v = out.WardenIdentityPolicy
	case "spoke-trust", "spoke-role":
		if len(out.SpokeRoles) == 0 {
			return fmt.Errorf("%s: identity.ec2.accounts lists no account with a role_arn", *path)
		}
		r := out.SpokeRoles[0]
		if *spoke != "" {
			i := slices.IndexFunc(out.SpokeRoles, func(r spokeRole) bool { return r.Account == *spoke })
			if i < 0 {
				return fmt.Errorf("--spoke %s: not an account with a role_arn in identity.ec2.accounts", *spoke)
			}
			r = out.SpokeRoles[i]
		}
		if *only == "spoke-trust" {
			v = r.TrustPolicy
		} else {
			v = r.RolePolicy
		}
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "%s\n", b)
	return err
}

// identityRoles builds the hub's identity policy and each spoke's role.
func identityRoles(c identity.EC2Config, principals []string) (identityRolesOutput, error) {
	hub := &iamPolicy{Version: "2012-10-17"}
	var roles []string
	out := identityRolesOutput{Notes: []string{resourceStarNote}}
	for _, a := range c.Accounts {
		if a.RoleARN == "" {
			continue
		}
		roles = append(roles, a.RoleARN)
		reads, err := readStatements(c.ECSTasks, arnPartition(a.RoleARN), a)
		if err != nil {
			return out, err
		}
		out.SpokeRoles = append(out.SpokeRoles, spokeRole{
			Account: a.Account,
			RoleARN: a.RoleARN,
			TrustPolicy: &trustPolicy{Version: "2012-10-17", Statement: []trustStatement{{
				Sid:       "WardenCentralOnly",
				Effect:    "Allow",
				Principal: map[string][]string{"AWS": principalAccountRoots(principals)},
				Action:    []string{"sts:AssumeRole"},
				// The external id answers the confused deputy; the
				// principal ARN keeps every other role of the hub
				// account out.
				Condition: map[string]map[string]any{
					"StringEquals": {"sts:ExternalId": a.ExternalID},
					"ArnLike":      {"aws:PrincipalArn": slices.Clone(principals)},
				},
			}}},
			RolePolicy: &iamPolicy{Version: "2012-10-17", Statement: reads},
		})
	}
	slices.Sort(roles)
	if len(roles) > 0 {
		hub.Statement = append(hub.Statement, iamStatement{Sid: "AssumeSpokeIdentityRoles", Effect: "Allow",
			Action: []string{"sts:AssumeRole"}, Resource: roles})
	}
	// The VPC endpoint connections of the hub's endpoint services name
	// each caller's endpoint and its owner; the API takes no resource.
	hub.Statement = append(hub.Statement, iamStatement{Sid: "ReadEndpointConnections", Effect: "Allow",
		Action: []string{"ec2:DescribeVpcEndpointConnections"}, Resource: []string{"*"}})
	// Warden's own account (listed without a role, or by default: the
	// account of the first principal) is read with Warden's own
	// credentials.
	own := identity.EC2AccountConfig{Account: arnAccount(principals[0])}
	if i := slices.IndexFunc(c.Accounts, func(a identity.EC2AccountConfig) bool { return a.RoleARN == "" }); i >= 0 {
		own = c.Accounts[i]
		if own.Account == "" {
			own.Account = arnAccount(principals[0])
		}
	}
	ownReads, err := readStatements(c.ECSTasks, arnPartition(principals[0]), own)
	if err != nil {
		return out, err
	}
	for i := range ownReads {
		ownReads[i].Sid = "OwnAccount" + ownReads[i].Sid
	}
	hub.Statement = append(hub.Statement, ownReads...)
	out.WardenIdentityPolicy = hub
	return out, nil
}

// readStatements are the reads of one account's callers: the interface
// and endpoint reads (no resource-level permissions), and with ecs_tasks
// the task index's, narrowed where IAM can: ecs:DescribeTasks to the
// account's tasks (of its ecs_clusters when listed), ecs:ListTasks to
// those clusters (ecs:cluster), and ecs:ListClusters only where the
// clusters are not listed (the index lists them then).
func readStatements(ecsTasks bool, partition string, a identity.EC2AccountConfig) ([]iamStatement, error) {
	sts := []iamStatement{{Sid: "ReadInterfaces", Effect: "Allow", Action: slices.Sorted(slices.Values(interfaceReads)), Resource: []string{"*"}}}
	if !ecsTasks {
		return sts, nil
	}
	var clusters, tasks []string
	for _, cl := range a.ECSClusters {
		name, region, account := cl, "*", a.Account
		if strings.HasPrefix(cl, "arn:") {
			parts := strings.SplitN(cl, ":", 6)
			if len(parts) != 6 || parts[2] != "ecs" || !strings.HasPrefix(parts[5], "cluster/") {
				return nil, fmt.Errorf("identity.ec2.accounts[%s].ecs_clusters: %q is not an ECS cluster ARN", a.Account, cl)
			}
			name, region, account = strings.TrimPrefix(parts[5], "cluster/"), parts[3], parts[4]
		}
		clusters = append(clusters, fmt.Sprintf("arn:%s:ecs:%s:%s:cluster/%s", partition, region, account, name))
		tasks = append(tasks, fmt.Sprintf("arn:%s:ecs:%s:%s:task/%s/*", partition, region, account, name))
	}
	noResource := []string{"ecs:DescribeTaskDefinition"}
	if len(clusters) == 0 {
		noResource = append(noResource, "ecs:ListClusters")
		tasks = []string{fmt.Sprintf("arn:%s:ecs:*:%s:task/*", partition, a.Account)}
	}
	sts = append(sts,
		iamStatement{Sid: "ReadTaskDefinitions", Effect: "Allow", Action: noResource, Resource: []string{"*"}},
		iamStatement{Sid: "ReadTasks", Effect: "Allow", Action: []string{"ecs:DescribeTasks"}, Resource: tasks})
	list := iamStatement{Sid: "ListTasks", Effect: "Allow", Action: []string{"ecs:ListTasks"}, Resource: []string{"*"}}
	if len(clusters) > 0 {
		list.Condition = map[string]map[string]any{"ArnLike": {"ecs:cluster": clusters}}
	}
	return append(sts, list), nil
}

func arnPartition(arn string) string {
	if parts := strings.SplitN(arn, ":", 6); len(parts) == 6 && parts[1] != "" {
		return parts[1]
	}
	return "aws"
}

func arnAccount(arn string) string {
	if parts := strings.SplitN(arn, ":", 6); len(parts) == 6 {
		return parts[4]
	}
	return ""
}

// principalAccountRoots names the accounts of the principals (trust
// policies take no wildcards in Principal; aws:PrincipalArn narrows).
func principalAccountRoots(principals []string) []string {
	var out []string
	for _, p := range principals {
		parts := strings.SplitN(p, ":", 6)
		root := "arn:" + parts[1] + ":iam::" + parts[4] + ":root"
		if !slices.Contains(out, root) {
			out = append(out, root)
		}
	}
	slices.Sort(out)
	return out
}
