// Package deploy_test proves the deployment files under deploy/ (ECS task
// definitions, the central Warden's ECS service and NLB, dashboards and
// alert rules) against the real parts they configure: the AWS SDK's ECS
// and Elastic Load Balancing v2 clients, Warden's config loader, identity
// source and policy, and the metrics a running Warden registers. The
// Kubernetes manifests and IAM policies are tested where they are made
// (inject, cmd/warden).
package deploy
