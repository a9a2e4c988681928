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

// Streaming reports whether the operation's response is an event stream
// (agent-runtime operations included).
func (o Operation) Streaming() bool {
	return o == OpInvokeModelWithResponseStream || o == OpConverseStream || o == OpInvokeModelWithBidirectionalStream || o.AgentStreaming()
}

// Route is what the method and path of a request say about it.
type Route struct {
	Op Operation
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
