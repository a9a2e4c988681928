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
//     the ECS task index's reads with ecs_tasks. Every one is a Describe or
//     List action, which IAM scopes by account, not by resource.
//
// deploy/iam/central-*.json are this command's output for
// deploy/examples/warden-central.yaml (TestDeployIAMPoliciesGenerated).

const identityRolesUsage = `  warden policy identity-roles --config FILE --principal ARN [--principal ARN …]
        [--only hub|spoke-trust|spoke-role] [--spoke ACCOUNT]
        emit a central Warden's IAM from identity.ec2: its own identity policy (assume each spoke
        role, read endpoint connections and its own account's interfaces), and each spoke role's
        trust policy (Warden's roles only, with the account's external id) and permissions
`

// The identity source's AWS calls (authz/identity/source_ec2*.go).
var (
	interfaceReads = []string{"ec2:DescribeNetworkInterfaces", "ec2:DescribeVpcEndpoints"}
	ecsTaskReads   = []string{"ecs:DescribeTaskDefinition", "ecs:DescribeTasks", "ecs:ListClusters", "ecs:ListTasks"}
)

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
	out := identityRoles(cfg.Identity.EC2, principals)
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
func identityRoles(c identity.EC2Config, principals []string) identityRolesOutput {
	reads := slices.Clone(interfaceReads)
	if c.ECSTasks {
		reads = append(reads, ecsTaskReads...)
	}
	hub := &iamPolicy{Version: "2012-10-17"}
	var roles []string
	var out identityRolesOutput
	for _, a := range c.Accounts {
		if a.RoleARN == "" {
			continue
		}
		roles = append(roles, a.RoleARN)
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
			RolePolicy: &iamPolicy{Version: "2012-10-17", Statement: []iamStatement{
				spokeReadStatement(readsFor(reads, a)),
			}},
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
	// Warden's own account (listed without a role, or by default) is read
	// with Warden's own credentials.
	ownReads := reads
	if i := slices.IndexFunc(c.Accounts, func(a identity.EC2AccountConfig) bool { return a.RoleARN == "" }); i >= 0 {
		ownReads = readsFor(reads, c.Accounts[i])
	}
	own := spokeReadStatement(ownReads)
	own.Sid = "ReadOwnAccountCallers"
	hub.Statement = append(hub.Statement, own)
	out.WardenIdentityPolicy = hub
	return out
}

// readsFor drops ecs:ListClusters for an account whose clusters are
// listed: the task index lists only those.
func readsFor(reads []string, a identity.EC2AccountConfig) []string {
	if len(a.ECSClusters) == 0 {
		return reads
	}
	return slices.DeleteFunc(slices.Clone(reads), func(s string) bool { return s == "ecs:ListClusters" })
}

func spokeReadStatement(reads []string) iamStatement {
	a := slices.Clone(reads)
	slices.Sort(a)
	return iamStatement{Sid: "ReadCallers", Effect: "Allow", Action: a, Resource: []string{"*"}}
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
