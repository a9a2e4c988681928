package identity

import (
	"slices"
	"strings"
)

// Tag keys every source uses, so the same selectors work whatever the source.
// Strength is a property of the key as much as of the source: a key in
// strongKeys is only ever produced from platform-set data (the API server, AWS
// APIs, a verified token or a Warden-issued key); everything else — labels,
// annotations, resource tags, static config copied from workload metadata —
// can be edited by the team being policed.
const (
	TagK8sNamespace      = "k8s.namespace"      // strong when from the API server or a verified token
	TagK8sServiceAccount = "k8s.serviceaccount" // strong when from the API server or a verified token
	TagK8sPod            = "k8s.pod"            // pod name
	TagK8sNode           = "k8s.node"
	TagK8sLabelPrefix    = "k8s.label."      // + label key: weak
	TagK8sAnnotPrefix    = "k8s.annotation." // + annotation key: weak

	TagECSCluster   = "ecs.cluster"       // cluster ARN or name, from AWS
	TagECSTaskARN   = "ecs.task_arn"      // from AWS
	TagECSFamily    = "ecs.family"        // task definition family: strong only with ecs_sidecar.platform_task_definitions
	TagECSRevision  = "ecs.revision"      // likewise
	TagECSService   = "ecs.service"       // likewise
	TagECSTaskRole  = "ecs.task_role_arn" // the task role the platform passed (iam:PassRole): strong; from the ecs-sidecar and ec2 sources
	TagECSLaunch    = "ecs.launch_type"
	TagECSTagPrefix = "ecs.tag." // + task tag key: weak

	TagAWSAccount   = "aws.account"
	TagAWSRegion    = "aws.region"
	TagAWSTagPrefix = "aws.tag." // + EC2/ENI tag key: weak
	TagAWSENI       = "aws.eni"
	TagAWSVPC       = "aws.vpc"    // the ENI's VPC
	TagAWSSubnet    = "aws.subnet" // the ENI's subnet
	TagAWSVPCE      = "aws.vpce"   // the PrivateLink endpoint the caller came through (PROXY protocol v2 AWS TLV)
	TagAWSInstance  = "aws.instance_id"
	TagAWSAccessKey = "aws.access_key_id" // passthrough mode: the caller's key id, recorded, never trusted alone

	TagWardenKeyApp = "warden.key_app" // from a verified Warden-issued key: strong
	TagWardenKeyID  = "warden.key_id"
)

// WeakTag and StrongTag build tags for a source.
func WeakTag(source, value string) Tag   { return Tag{Value: value, Source: source} }
func StrongTag(source, value string) Tag { return Tag{Value: value, Strong: true, Source: source} }

// IsWeakKey reports whether a tag key names workload-editable metadata, so a
// policy can be checked for selecting only on weak keys without a live
// identity.
func IsWeakKey(key string) bool {
	for _, p := range []string{TagK8sLabelPrefix, TagK8sAnnotPrefix, TagECSTagPrefix, TagAWSTagPrefix} {
		if strings.HasPrefix(key, p) {
			return true
		}
	}
	switch key {
	case TagK8sNamespace, TagK8sServiceAccount, TagK8sPod, TagK8sNode,
		TagECSCluster, TagECSTaskARN, TagECSFamily, TagECSRevision, TagECSService, TagECSLaunch, TagECSTaskRole,
		TagAWSAccount, TagAWSRegion, TagAWSENI, TagAWSInstance, TagAWSVPC, TagAWSSubnet, TagAWSVPCE,
		TagWardenKeyApp, TagWardenKeyID:
		return false
	}
	// Unknown keys (static config's own names, say) are weak: claimed, not proven.
	return true
}

// WeakUnder says why key, a key IsWeakKey counts as platform-set, is
// nonetheless produced weak by a source this config lists, or "" when no
// listed source makes it weak. ecs.family, ecs.revision and ecs.service
// are names whoever registers the task definition or creates the service
// chooses: the ecs-sidecar source marks them strong only with
// ecs_sidecar.platform_task_definitions, and the ec2 source's ECS task
// lookup (ec2.ecs_tasks) always marks them weak.
func (c *Config) WeakUnder(key string) string {
	switch key {
	case TagECSFamily, TagECSRevision, TagECSService:
	default:
		return ""
	}
	var why []string
	if slices.Contains(c.Sources, SourceECSSidecar) && !c.ECSSidecar.PlatformTaskDefinitions {
		why = append(why, "the ecs-sidecar source marks it weak because whoever registers a task definition or creates a service names it (if only the platform builds task definitions and services, set identity.ecs_sidecar.platform_task_definitions: true)")
	}
	if slices.Contains(c.Sources, SourceEC2) && c.EC2.ECSTasks {
		why = append(why, "the ec2 source's ECS task lookup (identity.ec2.ecs_tasks) always marks it weak, whatever the platform controls")
	}
	return strings.Join(why, "; ")
}
