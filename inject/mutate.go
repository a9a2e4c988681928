package inject

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Outcome is what the injector did with one admission (the metric label).
type Outcome string

const (
	OutcomeInjected  Outcome = "injected"  // the pod was patched
	OutcomeUnchanged Outcome = "unchanged" // already canonical: empty patch
	OutcomeOptedOut  Outcome = "opted_out" // opt-out honoured
	OutcomeSkipped   Outcome = "skipped"   // not a pod CREATE in an enrolled namespace
	OutcomeDenied    Outcome = "denied"    // refused (DeniedError)
	OutcomeBadInput  Outcome = "bad_input" // undecodable review or pod
	OutcomeError     Outcome = "error"     // the injector could not decide (fails closed)
)

// Outcomes lists every outcome (so each metric series exists from the start).
func Outcomes() []Outcome {
	return []Outcome{OutcomeInjected, OutcomeUnchanged, OutcomeOptedOut, OutcomeSkipped, OutcomeDenied, OutcomeBadInput, OutcomeError}
}

// DeniedError is a refusal with the message the API server shows the user.
type DeniedError struct{ Reason string }

func (e *DeniedError) Error() string { return e.Reason }

func denied(format string, a ...any) error { return &DeniedError{Reason: fmt.Sprintf(format, a...)} }

// Namespace is what the injector needs of a pod's namespace.
type Namespace struct {
	Name   string
	Labels map[string]string
}

// Enrolled reports whether pods in ns get Warden (never the injector's own).
func (in *Injector) Enrolled(ns Namespace) bool {
	return ns.Name != in.cfg.Namespace && ns.Labels[LabelEnrolled] == "true"
}

// Injector computes the canonical Warden sidecar for pods.
type Injector struct {
	cfg       *Config
	version   string
	resources corev1.ResourceRequirements
	rendered  map[string][]byte // sidecar config per mode
}

// New prepares an injector: the sidecar configuration of every mode is
// rendered once. version is written to AnnotationInjected.
func New(cfg *Config, version string) (*Injector, error) {
	if version == "" {
		return nil, errors.New("injector version is empty")
	}
	res, err := cfg.Resources.requirements()
	if err != nil {
		return nil, err
	}
	in := &Injector{cfg: cfg, version: version, resources: res, rendered: map[string][]byte{}}
	for _, m := range []string{ModeEndpoint, ModeProxy, ModeTransparent} {
		if in.rendered[m], err = cfg.SidecarConfig(m); err != nil {
			return nil, err
		}
	}
	return in, nil
}

// Version is what the injector writes to AnnotationInjected.
func (in *Injector) Version() string { return in.version }

// Config returns the injector's configuration.
func (in *Injector) Config() *Config { return in.cfg }

// SidecarConfig is the rendered configuration of a mode's sidecar.
func (in *Injector) SidecarConfig(mode string) []byte { return in.rendered[mode] }

// Mutate returns the pod as it must be stored in namespace ns, and what was
// done. A *DeniedError refuses the pod. pod is not modified.
func (in *Injector) Mutate(pod *corev1.Pod, ns Namespace) (*corev1.Pod, Outcome, error) {
	if !in.Enrolled(ns) {
		return pod, OutcomeSkipped, nil
	}
	a := pod.Annotations
	switch v := a[AnnotationInject]; v {
	case "", "true":
	case "false":
		if ns.Labels[LabelAllowOptOut] == "true" {
			return pod, OutcomeOptedOut, nil
		}
		return nil, OutcomeDenied, denied("namespace %s is enrolled in Warden and does not allow opting out (%s=false needs the namespace label %s=true, set by the platform)",
			ns.Name, AnnotationInject, LabelAllowOptOut)
	default:
		return nil, OutcomeDenied, denied("annotation %s=%q: want \"true\" or \"false\"", AnnotationInject, v)
	}
	mode := a[AnnotationMode]
	if mode == "" {
		mode = ModeEndpoint
	}
	if _, ok := in.rendered[mode]; !ok {
		return nil, OutcomeDenied, denied("annotation %s=%q: want %s, %s or %s", AnnotationMode, mode, ModeEndpoint, ModeProxy, ModeTransparent)
	}
	if pod.Spec.HostNetwork {
		return nil, OutcomeDenied, denied("pod uses hostNetwork: its loopback is the node's, so Warden's sidecar could not tell this pod from any other process on the node; enrolled pods cannot use hostNetwork")
	}
	if pod.Spec.HostPID || (pod.Spec.ShareProcessNamespace != nil && *pod.Spec.ShareProcessNamespace) {
		return nil, OutcomeDenied, denied("pod shares a process namespace (hostPID or shareProcessNamespace): other containers could read Warden's token and audit key through /proc; enrolled pods cannot")
	}
	for _, v := range pod.Spec.Volumes {
		if v.Name != VolumeToken && in.hasWardenToken(v) {
			return nil, OutcomeDenied, denied("volume %q projects a service-account token with Warden's audience %q: only the injector's %s volume, in Warden's container, may hold it",
				v.Name, in.cfg.Audience, VolumeToken)
		}
	}

	out := pod.DeepCopy()
	s := &out.Spec
	reserved := func(c corev1.Container) bool { return c.Name == ContainerName || c.Name == IptablesContainerName }
	// The ServiceAccount admission plugin mounts the API token into every
	// container, Warden's included, and runs again after a webhook's
	// change: keep its mount on Warden's containers, or every reinvocation
	// would take it away and be a change.
	apiTokenMounts := map[string][]corev1.VolumeMount{}
	for _, c := range s.InitContainers {
		if reserved(c) && apiTokenMounts[c.Name] == nil {
			for _, m := range c.VolumeMounts {
				if isAPITokenMount(m) {
					apiTokenMounts[c.Name] = append(apiTokenMounts[c.Name], m)
				}
			}
		}
	}
	s.Containers = slices.DeleteFunc(s.Containers, reserved)
	s.InitContainers = slices.DeleteFunc(s.InitContainers, reserved)
	if len(s.Containers) == 0 {
		return nil, OutcomeDenied, denied("pod has no container but %q: nothing for Warden to serve", ContainerName)
	}
	sa := s.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	head := []corev1.Container{}
	if mode == ModeTransparent {
		head = append(head, in.iptablesContainer())
	}
	head = append(head, in.wardenContainer(mode, ns.Name, sa))
	for i := range head {
		head[i].VolumeMounts = append(head[i].VolumeMounts, apiTokenMounts[head[i].Name]...)
	}
	s.InitContainers = append(head, s.InitContainers...)

	// Volumes: ours, canonical; a reserved name this mode does not use goes.
	ours := in.volumes(mode)
	s.Volumes = slices.DeleteFunc(s.Volumes, func(v corev1.Volume) bool {
		return isReservedVolume(v.Name) && !slices.ContainsFunc(ours, func(o corev1.Volume) bool { return o.Name == v.Name })
	})
	for _, v := range ours {
		s.Volumes = upsert(s.Volumes, v, func(x corev1.Volume) string { return x.Name })
	}

	env := appEnv(mode)
	for i := range s.Containers {
		in.fixApp(&s.Containers[i], mode, env)
	}
	for i := range s.InitContainers {
		if !reserved(s.InitContainers[i]) {
			in.fixApp(&s.InitContainers[i], mode, env)
		}
	}
	if s.SecurityContext == nil {
		s.SecurityContext = &corev1.PodSecurityContext{}
	}
	if s.SecurityContext.FSGroup == nil {
		g := GID
		s.SecurityContext.FSGroup = &g
	}
	if out.Annotations == nil {
		out.Annotations = map[string]string{}
	}
	out.Annotations[AnnotationInjected] = in.version
	out.Annotations[AnnotationConfig] = Digest(in.rendered[mode])
	return out, OutcomeInjected, nil
}

func (in *Injector) hasWardenToken(v corev1.Volume) bool {
	if v.Projected == nil {
		return false
	}
	for _, src := range v.Projected.Sources {
		if t := src.ServiceAccountToken; t != nil && t.Audience == in.cfg.Audience {
			return true
		}
	}
	return false
}

// apiTokenPath is where the ServiceAccount admission plugin mounts the
// kube-api-access-* projected volume.
const apiTokenPath = "/var/run/secrets/kubernetes.io/serviceaccount"

func isAPITokenMount(m corev1.VolumeMount) bool {
	return m.MountPath == apiTokenPath && strings.HasPrefix(m.Name, "kube-api-access-") && m.ReadOnly
}

func isReservedVolume(name string) bool {
	switch name {
	case VolumeToken, VolumeSpool, VolumePodInfo, VolumeCA:
		return true
	}
	return false
}

// fixApp gives an app container the mode's env and (proxy, transparent)
// the CA volume read-only, and takes Warden's other volumes away from it.
func (in *Injector) fixApp(c *corev1.Container, mode string, env []corev1.EnvVar) {
	c.VolumeMounts = slices.DeleteFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return isReservedVolume(m.Name) })
	if mode != ModeEndpoint {
		c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: VolumeCA, MountPath: CADir, ReadOnly: true})
	}
	for _, e := range env {
		c.Env = upsert(c.Env, e, func(x corev1.EnvVar) string { return x.Name })
	}
}

// upsert replaces the first element named like v (dropping later ones with
// that name) or appends v: in place, so a second pass changes nothing.
func upsert[T any](xs []T, v T, name func(T) string) []T {
	n := name(v)
	i := slices.IndexFunc(xs, func(x T) bool { return name(x) == n })
	if i < 0 {
		return append(xs, v)
	}
	xs[i] = v
	rest := slices.DeleteFunc(xs[i+1:], func(x T) bool { return name(x) == n })
	return xs[:i+1+len(rest)]
}

// appEnv is what every app container gets in a mode: the endpoint
// variables always (Warden's endpoint listener is up in every mode, and the
// clients that read them, Anthropic's Bedrock SDK among them, honour no
// proxy variable), and what the mode adds for the clients that do not.
func appEnv(mode string) []corev1.EnvVar {
	lit := func(k, v string) corev1.EnvVar { return corev1.EnvVar{Name: k, Value: v} }
	endpoint := "http://127.0.0.1:" + strconv.Itoa(EndpointPort)
	env := []corev1.EnvVar{lit(EnvAWSEndpoint, endpoint), lit(EnvAWSAgentEndpoint, endpoint), lit(EnvAnthropicBedrock, endpoint)}
	switch mode {
	case ModeEndpoint:
	case ModeProxy:
		url := "http://127.0.0.1:" + strconv.Itoa(ProxyPort)
		env = append(env, lit(EnvHTTPSProxy, url), lit(EnvHTTPSProxyLower, url),
			lit(EnvAWSCABundle, CABundleFile), lit(EnvNodeExtraCA, CACertFile))
	default: // transparent: nothing more to point at, but the MITM CA to trust
		env = append(env, lit(EnvAWSCABundle, CABundleFile), lit(EnvNodeExtraCA, CACertFile))
	}
	return env
}

// The values the API server would default are written out, so that the
// stored pod admitted again yields an empty patch.
const (
	termPath         = "/dev/termination-log"
	downwardMode     = int32(0o644)
	sessionNameLimit = 64
)

var sessionNameBad = regexp.MustCompile(`[^\w+=,.@-]`)

func (in *Injector) wardenContainer(mode, namespace, serviceAccount string) corev1.Container {
	always := corev1.ContainerRestartPolicyAlways
	t, f := true, false
	uid, gid := UID, GID
	field := func(name, path string) corev1.EnvVar {
		return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: path}}}
	}
	session := sessionNameBad.ReplaceAllString("warden-"+namespace, "-")
	if len(session) > sessionNameLimit {
		session = session[:sessionNameLimit]
	}
	probe := func(path string, period, failures int32) *corev1.Probe {
		return &corev1.Probe{
			ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
				Path: path, Port: intstr.FromInt32(AdminPort), Scheme: corev1.URISchemeHTTP}},
			TimeoutSeconds: 1, PeriodSeconds: period, SuccessThreshold: 1, FailureThreshold: failures,
		}
	}
	mounts := []corev1.VolumeMount{
		{Name: VolumeToken, MountPath: TokenDir, ReadOnly: true},
		{Name: VolumeSpool, MountPath: SpoolDir},
		{Name: VolumePodInfo, MountPath: PodInfoDir, ReadOnly: true},
	}
	if mode != ModeEndpoint {
		mounts = append(mounts, corev1.VolumeMount{Name: VolumeCA, MountPath: CADir})
	}
	args := []string{"serve", "--config-env", ConfigEnv}
	if in.cfg.Bundle != nil {
		// The trust roots' digest: the admission policy pins the args, so
		// a sidecar whose configuration trusts anything else will not start.
		args = append(args, "--bundle-pin", in.cfg.Bundle.TrustRoots().Pin())
	}
	return corev1.Container{
		Name:            ContainerName,
		Image:           in.cfg.Image,
		ImagePullPolicy: corev1.PullPolicy(in.cfg.ImagePullPolicy),
		Args:            args,
		RestartPolicy:   &always,
		Env: []corev1.EnvVar{
			{Name: ConfigEnv, Value: string(in.rendered[mode])},
			// Literal, platform-written: the identity source trusts them
			// (trust_pod_env) because the admission policy pins them.
			{Name: PodNamespaceEnv, Value: namespace},
			{Name: PodSAEnv, Value: serviceAccount},
			field(PodNameEnv, "metadata.name"),
			field(PodIPEnv, "status.podIP"),
			field(HostIPEnv, "status.hostIP"),
			{Name: "AWS_ROLE_ARN", Value: in.cfg.RoleARN},
			{Name: "AWS_WEB_IDENTITY_TOKEN_FILE", Value: TokenFile},
			{Name: "AWS_ROLE_SESSION_NAME", Value: session},
			{Name: "AWS_REGION", Value: in.cfg.Region},
			{Name: "AWS_STS_REGIONAL_ENDPOINTS", Value: "regional"},
			// Never fall back to the node's instance role.
			{Name: "AWS_EC2_METADATA_DISABLED", Value: "true"},
		},
		Ports: []corev1.ContainerPort{{Name: "warden-admin", ContainerPort: AdminPort, Protocol: corev1.ProtocolTCP}},
		// Started (and its listeners up) before the next init container and
		// the app containers run.
		StartupProbe:             probe("/readyz", 1, 60),
		ReadinessProbe:           probe("/readyz", 5, 3),
		LivenessProbe:            probe("/healthz", 10, 3),
		Resources:                in.resources,
		VolumeMounts:             mounts,
		TerminationMessagePath:   termPath,
		TerminationMessagePolicy: corev1.TerminationMessageReadFile,
		SecurityContext: &corev1.SecurityContext{
			RunAsUser: &uid, RunAsGroup: &gid, RunAsNonRoot: &t,
			ReadOnlyRootFilesystem: &t, AllowPrivilegeEscalation: &f,
			Capabilities:   &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
	}
}

// iptablesContainer is transparent mode's init step: it programs the
// pod's redirect and exits. The only container with network capabilities.
func (in *Injector) iptablesContainer() corev1.Container {
	root := int64(0)
	t, f := true, false
	return corev1.Container{
		Name:            IptablesContainerName,
		Image:           in.cfg.Image,
		ImagePullPolicy: corev1.PullPolicy(in.cfg.ImagePullPolicy),
		// Warden's uid alone is exempt: a group is not Warden's alone (an
		// app image's /etc/passwd may give its user gid 65532, and CEL
		// cannot see it), while the policies pin runAsUser != UID.
		// --print: the container's log shows the table read back from the
		// kernel (kubectl logs -c warden-iptables).
		Args: []string{"iptables", "--apply", "--print", "--port", strconv.Itoa(TransparentPort),
			"--uid", strconv.FormatInt(UID, 10)},
		Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("16Mi")},
			Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi")},
		},
		TerminationMessagePath:   termPath,
		TerminationMessagePolicy: corev1.TerminationMessageReadFile,
		SecurityContext: &corev1.SecurityContext{
			RunAsUser: &root, RunAsNonRoot: &f,
			ReadOnlyRootFilesystem: &t, AllowPrivilegeEscalation: &f,
			Capabilities: &corev1.Capabilities{
				Add:  []corev1.Capability{"NET_ADMIN"},
				Drop: []corev1.Capability{"ALL"},
			},
			SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
	}
}

func (in *Injector) volumes(mode string) []corev1.Volume {
	mode644 := downwardMode
	exp := in.cfg.TokenExpirationSeconds
	spoolLimit := resource.MustParse(in.cfg.SpoolSizeLimit) // validated
	field := func(path, file string) corev1.DownwardAPIVolumeFile {
		return corev1.DownwardAPIVolumeFile{Path: file, FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: path}}
	}
	vs := []corev1.Volume{
		{Name: VolumeToken, VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
			DefaultMode: &mode644,
			Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{
				Audience: in.cfg.Audience, ExpirationSeconds: &exp, Path: TokenPath}}},
		}}},
		{Name: VolumeSpool, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{SizeLimit: &spoolLimit}}},
		{Name: VolumePodInfo, VolumeSource: corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{
			DefaultMode: &mode644,
			Items:       []corev1.DownwardAPIVolumeFile{field("metadata.labels", "labels"), field("metadata.annotations", "annotations")},
		}}},
	}
	if mode != ModeEndpoint {
		vs = append(vs, corev1.Volume{Name: VolumeCA, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
	}
	return vs
}
