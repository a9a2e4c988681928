// Package inject is Warden's Kubernetes sidecar injector, served by
// `warden inject`: a mutating admission webhook that gives every pod
// created in an enrolled namespace the canonical Warden native sidecar
// (Injector.Mutate), answered as a JSON patch computed by diff (Handler,
// Patch); webhook TLS from files reloaded on change (CertReloader); and
// the audit of pods that do not run the current sidecar (Injector.Audit).
//
// The names it writes (labels, annotations, volumes, paths, ports) are in
// names.go and are shared with the admission policies that pin them.
// Tests run the webhook against a real kube-apiserver (internal/kubetest);
// with no kubelet there, they assert the pods the API server stores.
package inject
