// Package bedrock holds what Warden knows about the Amazon Bedrock runtime API:
// operations and their routes, model-id classification, AWS error shapes and
// event-stream frames. It performs no I/O beyond reading from a supplied reader.
package bedrock

// Operation is a bedrock-runtime API operation name, exactly as AWS spells it.
type Operation string

// The bedrock-runtime operations Warden recognises.
const (
	OpInvokeModel                        Operation = "InvokeModel"
	OpInvokeModelWithResponseStream      Operation = "InvokeModelWithResponseStream"
	OpInvokeModelWithBidirectionalStream Operation = "InvokeModelWithBidirectionalStream"
	OpConverse                           Operation = "Converse"
	OpConverseStream                     Operation = "ConverseStream"
	OpCountTokens                        Operation = "CountTokens"
	OpApplyGuardrail                     Operation = "ApplyGuardrail"
	OpInvokeGuardrailChecks              Operation = "InvokeGuardrailChecks"
	OpStartAsyncInvoke                   Operation = "StartAsyncInvoke"
	OpGetAsyncInvoke                     Operation = "GetAsyncInvoke"
	OpListAsyncInvokes                   Operation = "ListAsyncInvokes"
)

// The OpenAI-compatible and Anthropic-native operations (reference §1, §10).
// The model is the JSON body's "model"; whether the answer streams (server-
// sent events) is the body's "stream", not the route's.
const (
	// OpenAIChatCompletions and OpenAIResponses are bedrock-runtime's
	// OpenAI-compatible API: POST /openai/v1/chat/completions and
	// POST /openai/v1/responses (IAM: bedrock:InvokeModel, and
	// bedrock:InvokeModelWithResponseStream for streams).
	OpOpenAIChatCompletions Operation = "OpenAIChatCompletions"
	OpOpenAIResponses       Operation = "OpenAIResponses"
	// MantleChatCompletions, MantleResponses and MantleMessages are served on
	// bedrock-mantle.REGION.api.aws: POST {/v1,/openai/v1}/chat/completions,
	// POST {/v1,/openai/v1}/responses and POST /anthropic/v1/messages (IAM:
	// bedrock-mantle:CreateInference).
	OpMantleChatCompletions Operation = "MantleChatCompletions"
	OpMantleResponses       Operation = "MantleResponses"
	OpMantleMessages        Operation = "MantleMessages"
	// AnthropicAgents, AnthropicSessions and AnthropicMemoryStores are
	// Anthropic's Bedrock-only APIs (Claude Managed Agents) under
	// /anthropic/v1/ on bedrock.REGION.amazonaws.com, one operation per
	// resource and everything below it. Nothing Warden can inspect flows
	// through them as prompt text, so no policy allows them unless it names
	// them.
	OpAnthropicAgents       Operation = "AnthropicAgents"
	OpAnthropicSessions     Operation = "AnthropicSessions"
	OpAnthropicMemoryStores Operation = "AnthropicMemoryStores"
)

// BodyModel reports whether the operation names its model in the JSON
// body's "model" (rather than in the path, or in StartAsyncInvoke's
// "modelId").
func (o Operation) BodyModel() bool {
	switch o {
	case OpOpenAIChatCompletions, OpOpenAIResponses, OpMantleChatCompletions, OpMantleResponses, OpMantleMessages:
		return true
	}
	return false
}

// Service is the AWS endpoint a route is served on, spelled as its host
// name's first label (and, for bedrock-mantle, its IAM service prefix).
type Service string

// The services Warden routes to.
const (
	ServiceRuntime Service = "bedrock-runtime" // bedrock-runtime.REGION.amazonaws.com
	ServiceMantle  Service = "bedrock-mantle"  // bedrock-mantle.REGION.api.aws
	// ServiceBedrock is bedrock.REGION.amazonaws.com, the control plane's
	// host, where Anthropic's Bedrock-only APIs live under /anthropic/v1/.
	ServiceBedrock Service = "bedrock"
	// ServiceAgent is bedrock-agent.REGION.amazonaws.com, the Agents for
	// Bedrock control plane, which model resolution asks about agents.
	ServiceAgent Service = "bedrock-agent"
)

// SigningName is the SigV4 service name requests to the service are signed
// for: "bedrock" for bedrock-runtime and the control plane, "bedrock-mantle"
// for bedrock-mantle.
func (s Service) SigningName() string {
	if s == ServiceMantle {
		return "bedrock-mantle"
	}
	return "bedrock"
}

// Streaming reports whether the operation's response is an event stream
// (agent-runtime operations included).
func (o Operation) Streaming() bool {
	return o == OpInvokeModelWithResponseStream || o == OpConverseStream || o == OpInvokeModelWithBidirectionalStream || o.AgentStreaming()
}

// Route is what the method and path of a request say about it.
type Route struct {
	Op Operation
	// Service is the endpoint the operation is served on; "" is
	// bedrock-runtime (use OnService).
	Service Service
	// Path is the escaped path to send upstream when it differs from the
	// path the caller sent (an endpoint-mode prefix such as /bedrock-mantle
	// removed, /anthropic added); "" otherwise.
	Path string
	// RawModel is the model identifier exactly as sent, percent-decoded once
	// ("" for operations without a model in the path).
	RawModel string
	// Model is RawModel classified by ParseModelID (zero without a model).
	Model ModelID
	// GuardrailID and GuardrailVersion are set for ApplyGuardrail.
	GuardrailID, GuardrailVersion string
	// InvocationARN is set for GetAsyncInvoke (percent-decoded once).
	InvocationARN string
}

// OnService returns the endpoint the route is served on.
func (r Route) OnService() Service {
	if r.Service == "" {
		return ServiceRuntime
	}
	return r.Service
}

// ModelKind names the form of a model identifier.
type ModelKind string

// Model identifier kinds (reference §2).
const (
	KindFoundationModel             ModelKind = "foundation-model"
	KindInferenceProfile            ModelKind = "inference-profile" // system-defined cross-region profile
	KindApplicationInferenceProfile ModelKind = "application-inference-profile"
	KindProvisionedModel            ModelKind = "provisioned-model"
	KindCustomModel                 ModelKind = "custom-model"
	KindCustomModelDeployment       ModelKind = "custom-model-deployment"
	KindImportedModel               ModelKind = "imported-model"
	KindPrompt                      ModelKind = "prompt"
	KindPromptRouter                ModelKind = "prompt-router"
	KindDefaultPromptRouter         ModelKind = "default-prompt-router"
	KindSageMakerEndpoint           ModelKind = "sagemaker-endpoint"
)

// ModelID is a classified model identifier.
type ModelID struct {
	Raw       string    // as the caller sent it (decoded once)
	Kind      ModelKind //
	Partition string    // "aws", "aws-us-gov", "aws-cn"; "" for bare ids
	Region    string    // from the ARN; "" for bare ids
	Account   string    // from the ARN; "" for foundation models and bare ids
	Resource  string    // the resource id after "kind/" (or the bare id)
	// Scope is the geography prefix of a system inference profile
	// ("us", "eu", "apac", "us-gov", "jp", "au", "global"); "" otherwise.
	Scope string
	// Foundation is the base foundation model id when derivable without a
	// network call (foundation models, system inference profiles); "" otherwise.
	Foundation string
	// Canonical is the value policy globs match: the bare id for foundation
	// models and system profiles (ARN or not), the full ARN for everything else.
	Canonical string
}
