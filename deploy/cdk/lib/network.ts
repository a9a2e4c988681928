import { Stack, StackProps, CfnOutput } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as r53r from 'aws-cdk-lib/aws-route53resolver';
import { Construct } from 'constructs';
import { Policies, Settings, replaceString } from './settings';

// WardenNetworkStack is what lives in the workload account: the Bedrock VPC endpoints carrying
// Warden's endpoint policy, the security group that admits the Warden fleet to them, Warden's
// role, and DNS Firewall rules that keep other regions' and the api.aws Bedrock names
// unresolvable, so no workload reaches Bedrock over NAT around the endpoint.
//
// A security group cannot tell a sidecar from its app: they share a network namespace and so
// an address. The group narrows the endpoints to the Warden fleet's (or the pods') group; the
// endpoint policy, the role and the SCP are what separate Warden from the app.
export class WardenNetworkStack extends Stack {
  constructor(scope: Construct, id: string, s: Settings, p: Policies, props?: StackProps) {
    super(scope, id, props);

    const sg = new ec2.CfnSecurityGroup(this, 'BedrockEndpointsSecurityGroup', {
      groupDescription: 'Bedrock VPC endpoints: HTTPS from the Warden fleet only',
      vpcId: s.vpcId,
    });
    new ec2.CfnSecurityGroupIngress(this, 'FromWardenFleet', {
      groupId: sg.attrGroupId,
      ipProtocol: 'tcp',
      fromPort: 443,
      toPort: 443,
      sourceSecurityGroupId: s.wardenSecurityGroupId,
      description: 'Warden (sidecars share their pod or task address: see docs/infrastructure.md)',
    });

    const endpoint = (id: string, service: string) =>
      new ec2.CfnVPCEndpoint(this, id, {
        vpcId: s.vpcId,
        serviceName: `com.amazonaws.${s.region}.${service}`,
        vpcEndpointType: 'Interface',
        privateDnsEnabled: true,
        subnetIds: s.subnetIds,
        securityGroupIds: [sg.attrGroupId],
        policyDocument: p.vpce,
      });
    const runtime = endpoint('BedrockRuntimeEndpoint', 'bedrock-runtime');
    const agentRuntime = endpoint('BedrockAgentRuntimeEndpoint', 'bedrock-agent-runtime');

    // Warden's role: assumed with a projected service-account token of Warden's own audience,
    // under /warden/ (the path the SCP exempts and guards). Its policy is the generated one, with
    // the placeholder endpoint id replaced by the runtime endpoint's.
    const oidcArn = `arn:aws:iam::${s.account}:oidc-provider/${s.oidcProvider}`;
    const role = new iam.CfnRole(this, 'WardenRole', {
      roleName: 'warden',
      path: '/warden/',
      description: 'Warden: re-signs Bedrock calls; only through the VPC endpoint',
      assumeRolePolicyDocument: {
        Version: '2012-10-17',
        Statement: [{
          Effect: 'Allow',
          Principal: { Federated: oidcArn },
          Action: 'sts:AssumeRoleWithWebIdentity',
          Condition: {
            StringEquals: { [`${s.oidcProvider}:aud`]: s.audience },
            StringLike: { [`${s.oidcProvider}:sub`]: s.serviceAccounts },
          },
        }],
      },
      policies: [{
        policyName: 'warden',
        policyDocument: replaceString(p.role, s.sourceVpcePlaceholder, runtime.ref),
      }],
    });

    // DNS Firewall: block the names that would reach Bedrock without the endpoint: other regions'
    // runtime and agent runtime (over NAT), and the api.aws names (dual-stack runtime, Mantle) of
    // every region, ours included, which the endpoint's private DNS does not cover.
    const domains: string[] = [];
    for (const r of s.bedrockRegions) {
      if (r !== s.region) {
        for (const svc of ['bedrock-runtime', 'bedrock-runtime-fips', 'bedrock-agent-runtime', 'bedrock-agent-runtime-fips']) {
          domains.push(`${svc}.${r}.amazonaws.com`);
        }
      }
      for (const svc of ['bedrock-runtime', 'bedrock-mantle']) {
        domains.push(`${svc}.${r}.api.aws`);
      }
    }
    const list = new r53r.CfnFirewallDomainList(this, 'BedrockBypassDomains', {
      name: 'warden-bedrock-bypass',
      domains,
    });
    const group = new r53r.CfnFirewallRuleGroup(this, 'BedrockBypassRules', {
      name: 'warden-bedrock-bypass',
      firewallRules: [{
        firewallDomainListId: list.attrId,
        priority: 100,
        action: 'BLOCK',
        blockResponse: 'NXDOMAIN',
      }],
    });
    new r53r.CfnFirewallRuleGroupAssociation(this, 'BedrockBypassRulesAssociation', {
      firewallRuleGroupId: group.attrId,
      vpcId: s.vpcId,
      priority: 101,
      name: 'warden-bedrock-bypass',
      mutationProtection: 'ENABLED',
    });

    new CfnOutput(this, 'BedrockRuntimeEndpointId', { value: runtime.ref });
    new CfnOutput(this, 'BedrockAgentRuntimeEndpointId', { value: agentRuntime.ref });
    new CfnOutput(this, 'WardenRoleArn', { value: role.attrArn });
  }
}
