package identity

import (
	"context"
)

// Exports for the external test package (policy_decisions_test.go).
var (
	StartEC2      = startEC2
	EC2SourceFor  = ec2Source
	EC2ConnFrom   = ec2ConnFrom
	K8sEventually = k8sEventually
	EC2Base       = ec2Base
	EC2TestKey    = ec2TestKey
	EC2TestSecret = ec2TestSecret
)

// VerifyCache runs one verification sweep of an ec2 source's cache.
func VerifyCache(s *EC2Source) error { return s.cache.Verify(context.Background()) }
