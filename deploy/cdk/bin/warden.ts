import * as path from 'node:path';
import { App } from 'aws-cdk-lib';
import { loadPolicies, loadSettings } from '../lib/settings';
import { WardenNetworkStack } from '../lib/network';
import { WardenOrganizationStack } from '../lib/organization';

// Run from deploy/cdk (npm run build && npm run synth). WARDEN_INFRA names another settings file,
// WARDEN_IAM_DIR another directory of `warden policy vpce-policy` output.
const root = path.resolve(__dirname, '..', '..');
const settings = loadSettings(process.env.WARDEN_INFRA ?? path.join(root, 'warden-infra.json'));
const policies = loadPolicies(process.env.WARDEN_IAM_DIR ?? path.join(root, '..', 'iam'));

const app = new App();
const env = { account: settings.account, region: settings.region };
new WardenNetworkStack(app, 'WardenNetwork', settings, policies, { env });
new WardenOrganizationStack(app, 'WardenOrganization', settings, policies, { env });
app.synth();
