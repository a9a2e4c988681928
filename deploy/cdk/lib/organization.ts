import { Stack, StackProps } from 'aws-cdk-lib';
import * as org from 'aws-cdk-lib/aws-organizations';
import { Construct } from 'constructs';
import { Policies, Settings } from './settings';

// WardenOrganizationStack is deployed in the organization's management account: the SCP that
// denies every Bedrock data-plane call to every principal but Warden's roles, on the workload OUs.
export class WardenOrganizationStack extends Stack {
  constructor(scope: Construct, id: string, s: Settings, p: Policies, props?: StackProps) {
    super(scope, id, props);
    new org.CfnPolicy(this, 'DenyDirectBedrock', {
      name: 'warden-deny-direct-bedrock',
      description: 'Only Warden (role/warden/*) calls Bedrock; only the platform pipeline changes Warden roles',
      type: 'SERVICE_CONTROL_POLICY',
      content: p.scp,
      targetIds: s.organizationTargets,
    });
  }
}
