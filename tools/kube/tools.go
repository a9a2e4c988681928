//go:build tools

// Package kube pins the commands scripts/kube-assets builds from this module.
package kube

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
)
