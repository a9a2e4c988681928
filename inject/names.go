package inject

// Names shared with the admission policies (deploy/kubernetes/admission/,
// written from /work/notes/k8s-contract.md): change one only together with
// them.
const (
	// LabelEnrolled on a namespace enrols its pods (platform-owned).
	LabelEnrolled = "warden-egress.io/enrolled"
	// LabelAllowOptOut on a namespace lets its pods opt out.
	LabelAllowOptOut = "warden-egress.io/allow-opt-out"
	// AnnotationMode on a pod chooses endpoint, proxy or transparent mode.
	AnnotationMode = "warden-egress.io/mode"
	// AnnotationInject "false" on a pod opts out, where the namespace allows it.
	AnnotationInject = "warden-egress.io/inject"
	// AnnotationInjected is set by the injector to its version.
	AnnotationInjected = "warden-egress.io/injected"
	// AnnotationConfig is set by the injector to a digest of the sidecar's
	// configuration (WARDEN_CONFIG), so --audit sees a changed policy.
	AnnotationConfig = "warden-egress.io/config"

	// DefaultNamespace is the injector's own namespace, never injected.
	DefaultNamespace = "warden-system"
	// DefaultAudience is the audience of Warden's projected token.
	DefaultAudience = "warden.bedrock"

	ModeEndpoint    = "endpoint"
	ModeProxy       = "proxy"
	ModeTransparent = "transparent"

	// ContainerName is Warden's container (a native sidecar in
	// initContainers); IptablesContainerName is transparent mode's init step.
	ContainerName         = "warden"
	IptablesContainerName = "warden-iptables"

	// UID and GID Warden runs as (the distroless nonroot user); fsGroup too.
	UID int64 = 65532
	GID int64 = 65532

	VolumeToken   = "warden-token"
	VolumeSpool   = "warden-spool"
	VolumePodInfo = "warden-podinfo"
	VolumeCA      = "warden-ca"

	// TokenDir is where warden-token is mounted; TokenFile the token in it.
	TokenDir  = "/var/run/secrets/warden"
	TokenPath = "token"
	TokenFile = TokenDir + "/" + TokenPath
	SpoolDir  = "/var/lib/warden"
	// AuditSpoolDir is the audit spool inside warden-spool.
	AuditSpoolDir   = SpoolDir + "/audit"
	PodInfoDir      = "/etc/podinfo"
	PodLabelsFile   = PodInfoDir + "/labels"
	PodAnnotsFile   = PodInfoDir + "/annotations"
	CADir           = "/etc/warden-ca"
	CACertFile      = CADir + "/ca.crt"     // the CA certificate alone (NODE_EXTRA_CA_CERTS)
	CABundleFile    = CADir + "/bundle.crt" // system roots + the CA (AWS_CA_BUNDLE)
	ConfigEnv       = "WARDEN_CONFIG"
	PodNamespaceEnv = "POD_NAMESPACE"
	PodSAEnv        = "POD_SERVICE_ACCOUNT"
	PodNameEnv      = "POD_NAME"
	PodIPEnv        = "POD_IP"
	HostIPEnv       = "HOST_IP"

	// Ports of the sidecar's listeners.
	EndpointPort    = 8480
	ProxyPort       = 8481
	TransparentPort = 8482
	AdminPort       = 9480
)

// App container environment variables the injector sets.
const (
	// EnvAWSEndpoint is read by the AWS SDKs (Go v2, JS v3, boto3, CLI) for
	// the bedrock-runtime service only.
	EnvAWSEndpoint = "AWS_ENDPOINT_URL_BEDROCK_RUNTIME"
	// EnvAWSAgentEndpoint is the same for bedrock-agent-runtime (Agents,
	// Knowledge Bases, Flows), which the sidecar's endpoint listener serves
	// too (by path).
	EnvAWSAgentEndpoint = "AWS_ENDPOINT_URL_BEDROCK_AGENT_RUNTIME"
	// EnvAnthropicBedrock is read by Anthropic's Bedrock SDKs
	// (@anthropic-ai/bedrock-sdk, anthropic[bedrock] for Python).
	EnvAnthropicBedrock = "ANTHROPIC_BEDROCK_BASE_URL"
	EnvHTTPSProxy       = "HTTPS_PROXY"
	EnvHTTPSProxyLower  = "https_proxy"
	EnvAWSCABundle      = "AWS_CA_BUNDLE"
	EnvNodeExtraCA      = "NODE_EXTRA_CA_CERTS"
)
