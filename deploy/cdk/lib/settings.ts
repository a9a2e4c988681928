import * as fs from 'node:fs';
import * as path from 'node:path';

// Settings are the account's facts (warden-infra.json); the three policies are the files
// `warden policy vpce-policy` generates into deploy/iam, embedded as they are.
export interface Settings {
  account: string;
  region: string;
  vpcId: string;
  subnetIds: string[];
  wardenSecurityGroupId: string;
  oidcProvider: string;
  audience: string;
  serviceAccounts: string[];
  organizationTargets: string[];
  sourceVpcePlaceholder: string;
  bedrockRegions: string[];
}

export interface Policies {
  vpce: unknown;
  role: unknown;
  scp: unknown;
}

export function loadSettings(file: string): Settings {
  return JSON.parse(fs.readFileSync(file, 'utf8')) as Settings;
}

export function loadPolicies(iamDir: string): Policies {
  const read = (name: string): unknown => JSON.parse(fs.readFileSync(path.join(iamDir, name), 'utf8'));
  return {
    vpce: read('vpce-policy.json'),
    role: read('warden-role-policy.json'),
    scp: read('deny-direct-bedrock-scp.json'),
  };
}

// replaceString returns a copy of a JSON value with every string equal to from replaced by to
// (a CloudFormation reference, say).
export function replaceString(v: unknown, from: string, to: unknown): unknown {
  if (v === from) return to;
  if (Array.isArray(v)) return v.map((x) => replaceString(x, from, to));
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) out[k] = replaceString(x, from, to);
    return out;
  }
  return v;
}
