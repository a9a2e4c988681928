// Package helm tests Warden's Helm chart (deploy/helm/warden) with Helm's Go
// SDK: lint, render every mode, compare the admission objects with `warden
// inject --print-policies`, and apply everything rendered to a real
// kube-apiserver (internal/kubetest) with a server-side dry run.
//
// It is a separate module because helm.sh/helm/v4 brings many dependencies
// the main module must not link; scripts/test runs its tests after the main
// module's (cd tools/helm && go test ./...).
package helm
