package policy

// BedrockGuardrailConfig is an Amazon Bedrock guardrail (created in AWS)
// that Warden attaches to an app's calls: the X-Amzn-Bedrock-Guardrail*
// headers of InvokeModel and InvokeModelWithResponseStream, the
// guardrailConfig member of Converse and ConverseStream bodies. A call
// naming another guardrail is denied.
type BedrockGuardrailConfig struct {
	// ID is the guardrail's id or ARN, as Bedrock's guardrailIdentifier.
	ID string `yaml:"id"`
	// Version is a version number ("1") or DRAFT.
	Version string `yaml:"version"`
	// Trace is enabled, disabled or enabled_full; empty leaves the
	// caller's setting (Bedrock's default: disabled).
	Trace string `yaml:"trace"`
}

// GuardrailTraces are the values bedrock_guardrail.trace may take.
var GuardrailTraces = []string{"enabled", "disabled", "enabled_full"}
