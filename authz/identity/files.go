package identity

import (
	"errors"
	"fmt"
	"slices"
)

// CheckFiles loads the files the listed sources read when they start —
// the keys source's master key and revocation list, a kubeconfig named for
// the kubernetes or token source — without contacting anything, so
// `warden policy validate --files` refuses what serve would. A kubeconfig
// left empty means in-cluster, which only the running pod can check.
func (c *Config) CheckFiles() error {
	var errs []error
	if slices.Contains(c.Sources, SourceKeys) {
		if _, err := NewKeysSource(c.Keys, nil); err != nil {
			errs = append(errs, fmt.Errorf("identity.keys: %w", err))
		}
	}
	if slices.Contains(c.Sources, SourceKubernetes) && c.Kubernetes.Kubeconfig != "" {
		if _, err := kubeRESTConfig(c.Kubernetes.Kubeconfig); err != nil {
			errs = append(errs, fmt.Errorf("identity.kubernetes.kubeconfig: %w", err))
		}
	}
	if slices.Contains(c.Sources, SourceToken) && c.Token.Kubeconfig != "" {
		if _, err := kubeRESTConfig(c.Token.Kubeconfig); err != nil {
			errs = append(errs, fmt.Errorf("identity.token.kubeconfig: %w", err))
		}
	}
	return errors.Join(errs...)
}
