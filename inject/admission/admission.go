// Package admission holds Warden's admission policies for Kubernetes: the
// ValidatingAdmissionPolicies (CEL), their bindings and their parameters that
// leave an app team no way around the Warden sidecar (issue 14; the threat
// model row by row is in docs/kubernetes-admission.md).
//
// The manifests are embedded (manifests/*.yaml, copied verbatim to
// deploy/kubernetes/admission/ and kept identical by a test), so the injector
// can print them (`warden inject --print-policies`) with parameters generated
// from its own configuration: see Params and WriteManifests.
//
// Every rule is a ValidatingAdmissionPolicy: kube-apiserver evaluates policies
// for CONNECT (pods/exec, pods/attach) as well as CREATE and UPDATE, so no
// validating webhook is needed.
package admission

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

//go:embed manifests/*.yaml
var manifests embed.FS

// Names of the objects the manifests define.
const (
	ParamsName      = "warden-admission-params"
	ParamsNamespace = "warden-system"

	PolicyPods               = "warden-pods"
	PolicyNamespaces         = "warden-namespaces"
	PolicyTokenRequests      = "warden-token-requests"
	PolicyExec               = "warden-exec"
	PolicyEphemeralContainer = "warden-ephemeral-containers"
	PolicyTransparent        = "warden-transparent"

	// LabelAllowTransparent on an enrolled namespace (platform-owned) lets
	// its pods run transparent mode: Pod Security enforce may then be
	// `privileged`, and PolicyTransparent enforces `restricted` on every
	// container but the canonical warden-iptables.
	LabelAllowTransparent = "warden-egress.io/allow-transparent"
)

// File is one embedded manifest file.
type File struct {
	// Name is the file's base name ("10-pods.yaml"); the names sort in
	// install order (parameters first).
	Name string
	Data []byte
}

// Files returns the embedded manifest files in install order.
func Files() ([]File, error) {
	entries, err := fs.ReadDir(manifests, "manifests")
	if err != nil {
		return nil, fmt.Errorf("admission: embedded manifests: %w", err)
	}
	var out []File
	for _, e := range entries {
		data, err := manifests.ReadFile(path.Join("manifests", e.Name()))
		if err != nil {
			return nil, fmt.Errorf("admission: embedded manifest %s: %w", e.Name(), err)
		}
		out = append(out, File{Name: e.Name(), Data: data})
	}
	slices.SortFunc(out, func(a, b File) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// Set is the decoded manifests.
type Set struct {
	Params   *corev1.ConfigMap
	Policies []*admissionregistrationv1.ValidatingAdmissionPolicy
	Bindings []*admissionregistrationv1.ValidatingAdmissionPolicyBinding
}

// Load decodes the embedded manifests. Every binding's paramRef names the
// parameters ConfigMap, which Load checks with ParseParams.
func Load() (*Set, error) {
	files, err := Files()
	if err != nil {
		return nil, err
	}
	var s Set
	for _, f := range files {
		if err := s.decode(f.Name, f.Data); err != nil {
			return nil, err
		}
	}
	return s.check(ParamsNamespace)
}

// Decode decodes a stream WriteManifests wrote (what `warden inject
// --print-policies` prints), with the same checks as Load; the bindings
// must read their parameters from the ConfigMap's namespace.
func Decode(stream []byte) (*Set, error) {
	var s Set
	if err := s.decode("stream", stream); err != nil {
		return nil, err
	}
	if s.Params == nil {
		return nil, errors.New("admission: the stream defines no parameters ConfigMap")
	}
	return s.check(s.Params.Namespace)
}

func (s *Set) decode(name string, data []byte) error {
	docs, err := splitDocuments(data)
	if err != nil {
		return fmt.Errorf("admission: %s: %w", name, err)
	}
	for i, doc := range docs {
		if err := s.add(doc); err != nil {
			return fmt.Errorf("admission: %s document %d: %w", name, i+1, err)
		}
	}
	return nil
}

func (s *Set) check(paramsNamespace string) (*Set, error) {
	if s.Params == nil {
		return nil, errors.New("admission: the manifests define no parameters ConfigMap")
	}
	if _, err := ParseParams(s.Params); err != nil {
		return nil, err
	}
	policies := map[string]bool{}
	for _, p := range s.Policies {
		policies[p.Name] = true
	}
	for _, b := range s.Bindings {
		if !policies[b.Spec.PolicyName] {
			return nil, fmt.Errorf("admission: binding %s names policy %q, which the manifests do not define", b.Name, b.Spec.PolicyName)
		}
		if r := b.Spec.ParamRef; r == nil || r.Name != ParamsName || r.Namespace != paramsNamespace {
			return nil, fmt.Errorf("admission: binding %s does not take its parameters from %s/%s", b.Name, paramsNamespace, ParamsName)
		}
	}
	return s, nil
}

func (s *Set) add(doc []byte) error {
	var meta struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	if err := yaml.Unmarshal(doc, &meta); err != nil {
		return err
	}
	strict := func(into any) error { return yaml.UnmarshalStrict(doc, into) }
	switch meta.APIVersion + " " + meta.Kind {
	case "v1 ConfigMap":
		if s.Params != nil {
			return errors.New("a second ConfigMap")
		}
		s.Params = &corev1.ConfigMap{}
		return strict(s.Params)
	case "admissionregistration.k8s.io/v1 ValidatingAdmissionPolicy":
		p := &admissionregistrationv1.ValidatingAdmissionPolicy{}
		s.Policies = append(s.Policies, p)
		return strict(p)
	case "admissionregistration.k8s.io/v1 ValidatingAdmissionPolicyBinding":
		b := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{}
		s.Bindings = append(s.Bindings, b)
		return strict(b)
	default:
		return fmt.Errorf("unexpected object %s %s", meta.APIVersion, meta.Kind)
	}
}

// splitDocuments splits a multi-document YAML file on "---" lines, dropping
// documents that hold only comments.
func splitDocuments(data []byte) ([][]byte, error) {
	var docs [][]byte
	for _, part := range bytes.Split(append([]byte("\n"), data...), []byte("\n---\n")) {
		var v any
		if err := yaml.Unmarshal(part, &v); err != nil {
			return nil, err
		}
		if v != nil {
			docs = append(docs, part)
		}
	}
	return docs, nil
}

// ExampleParams returns the parameters the manifests ship with
// (deploy/kubernetes/admission/00-params.yaml): the injector's sidecar as it
// writes it today, with placeholder image digests. A starting point to adapt.
func ExampleParams() (*Params, error) {
	s, err := Load()
	if err != nil {
		return nil, err
	}
	return ParseParams(s.Params)
}

// WriteManifests writes the manifests, in install order, as one multi-document
// YAML stream, with the parameters ConfigMap generated from p (nil: the
// embedded example parameters).
func WriteManifests(w io.Writer, p *Params) error {
	files, err := Files()
	if err != nil {
		return err
	}
	for i, f := range files {
		data := f.Data
		if p != nil && strings.HasPrefix(f.Name, "00-params") {
			cm, err := p.ConfigMap()
			if err != nil {
				return err
			}
			if data, err = yaml.Marshal(cm); err != nil {
				return fmt.Errorf("admission: render parameters: %w", err)
			}
			data = append([]byte("# Generated from the injector's configuration.\n"), data...)
		}
		if p != nil && p.InjectorNamespace != ParamsNamespace {
			// The parameters live in the injector's namespace.
			data = bytes.ReplaceAll(data, []byte(paramRefYAML(ParamsNamespace)), []byte(paramRefYAML(p.InjectorNamespace)))
		}
		if i > 0 {
			if _, err := io.WriteString(w, "---\n"); err != nil {
				return err
			}
		}
		if _, err := w.Write(data); err != nil {
			return err
		}
	}
	return nil
}

// paramRefYAML is a binding's paramRef as the manifests write it.
func paramRefYAML(namespace string) string {
	return "  paramRef:\n    name: " + ParamsName + "\n    namespace: " + namespace + "\n"
}
