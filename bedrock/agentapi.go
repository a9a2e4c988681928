package bedrock

// The bedrock-agent-runtime operations (Agents, Knowledge Bases, Flows,
// sessions and memory), every operation of aws-sdk-go-v2/service/bedrockagentruntime
// v1.41.0, spelled as AWS spells them. They share the Operation type with the
// bedrock-runtime operations: no name is used by both services.
const (
	OpInvokeAgent               Operation = "InvokeAgent"
	OpInvokeInlineAgent         Operation = "InvokeInlineAgent"
	OpRetrieve                  Operation = "Retrieve"
	OpRetrieveAndGenerate       Operation = "RetrieveAndGenerate"
	OpRetrieveAndGenerateStream Operation = "RetrieveAndGenerateStream"
	OpInvokeFlow                Operation = "InvokeFlow"
	OpRerank                    Operation = "Rerank"
	OpGenerateQuery             Operation = "GenerateQuery"
	OpOptimizePrompt            Operation = "OptimizePrompt"
	OpCreateSession             Operation = "CreateSession"
	OpGetSession                Operation = "GetSession"
	OpUpdateSession             Operation = "UpdateSession"
	OpEndSession                Operation = "EndSession"
	OpDeleteSession             Operation = "DeleteSession"
	OpListSessions              Operation = "ListSessions"
	OpCreateInvocation          Operation = "CreateInvocation"
	OpListInvocations           Operation = "ListInvocations"
	OpPutInvocationStep         Operation = "PutInvocationStep"
	OpGetInvocationStep         Operation = "GetInvocationStep"
	OpListInvocationSteps       Operation = "ListInvocationSteps"
	OpGetAgentMemory            Operation = "GetAgentMemory"
	OpDeleteAgentMemory         Operation = "DeleteAgentMemory"
	OpTagResource               Operation = "TagResource"
	OpUntagResource             Operation = "UntagResource"
	OpListTagsForResource       Operation = "ListTagsForResource"
)

// ServiceAgentRuntime is the agent runtime's endpoint,
// bedrock-agent-runtime.REGION.amazonaws.com; its SigV4 signing name is
// "bedrock" (Service.SigningName), as for bedrock-runtime.
const ServiceAgentRuntime Service = "bedrock-agent-runtime"

// agentOps is every agent-runtime operation with what Warden knows of it.
var agentOps = [...]struct {
	op     Operation
	stream bool   // the response is an event stream
	action string // the IAM action AWS authorises the call with
}{
	{OpInvokeAgent, true, "bedrock:InvokeAgent"},
	{OpInvokeInlineAgent, true, "bedrock:InvokeInlineAgent"},
	{OpRetrieve, false, "bedrock:Retrieve"},
	{OpRetrieveAndGenerate, false, "bedrock:RetrieveAndGenerate"},
	{OpRetrieveAndGenerateStream, true, "bedrock:RetrieveAndGenerate"},
	{OpInvokeFlow, true, "bedrock:InvokeFlow"},
	{OpRerank, false, "bedrock:Rerank"},
	{OpGenerateQuery, false, "bedrock:GenerateQuery"},
	{OpOptimizePrompt, true, "bedrock:OptimizePrompt"},
	{OpCreateSession, false, "bedrock:CreateSession"},
	{OpGetSession, false, "bedrock:GetSession"},
	{OpUpdateSession, false, "bedrock:UpdateSession"},
	{OpEndSession, false, "bedrock:EndSession"},
	{OpDeleteSession, false, "bedrock:DeleteSession"},
	{OpListSessions, false, "bedrock:ListSessions"},
	{OpCreateInvocation, false, "bedrock:CreateInvocation"},
	{OpListInvocations, false, "bedrock:ListInvocations"},
	{OpPutInvocationStep, false, "bedrock:PutInvocationStep"},
	{OpGetInvocationStep, false, "bedrock:GetInvocationStep"},
	{OpListInvocationSteps, false, "bedrock:ListInvocationSteps"},
	{OpGetAgentMemory, false, "bedrock:GetAgentMemory"},
	{OpDeleteAgentMemory, false, "bedrock:DeleteAgentMemory"},
	{OpTagResource, false, "bedrock:TagResource"},
	{OpUntagResource, false, "bedrock:UntagResource"},
	{OpListTagsForResource, false, "bedrock:ListTagsForResource"},
}

// AgentOperations lists every bedrock-agent-runtime operation.
func AgentOperations() []Operation {
	out := make([]Operation, len(agentOps))
	for i, o := range agentOps {
		out[i] = o.op
	}
	return out
}

// AgentRuntime reports whether o is a bedrock-agent-runtime operation.
func (o Operation) AgentRuntime() bool {
	for _, a := range agentOps {
		if a.op == o {
			return true
		}
	}
	return false
}

// AgentStreaming reports whether o is an agent-runtime operation whose
// response is an event stream (InvokeAgent, InvokeInlineAgent, InvokeFlow,
// RetrieveAndGenerateStream, OptimizePrompt).
func (o Operation) AgentStreaming() bool {
	for _, a := range agentOps {
		if a.op == o {
			return a.stream
		}
	}
	return false
}

// AgentIAMAction returns the IAM action AWS authorises an agent-runtime
// operation with ("" for other operations).
func (o Operation) AgentIAMAction() string {
	for _, a := range agentOps {
		if a.op == o {
			return a.action
		}
	}
	return ""
}

// AgentRoute is what the method, path and query of a bedrock-agent-runtime
// request say about it. Every identifier is percent-decoded once and has
// passed its syntax check; fields an operation does not carry are "".
type AgentRoute struct {
	Op Operation

	// AgentID and AgentAliasID: InvokeAgent, GetAgentMemory, DeleteAgentMemory.
	AgentID, AgentAliasID string
	// SessionID is the agent session: the path's {sessionId} of InvokeAgent
	// and InvokeInlineAgent, the sessionId query parameter of DeleteAgentMemory.
	SessionID string
	// MemoryID is the memoryId query parameter of GetAgentMemory (required)
	// and DeleteAgentMemory (optional).
	MemoryID string
	// KnowledgeBaseID: Retrieve.
	KnowledgeBaseID string
	// FlowID and FlowAliasID are the bare ids of InvokeFlow's flow and alias
	// (taken out of ARNs); FlowARN and FlowAliasARN are the ARNs when the
	// caller sent ARNs.
	FlowID, FlowAliasID, FlowARN, FlowAliasARN string
	// Session is the sessions API's bare session id (a UUID), and SessionARN
	// the ARN when the caller sent one: Get/Update/End/DeleteSession, the
	// invocation and invocation-step operations, and the tag operations.
	Session, SessionARN string
	// InvocationStepID: GetInvocationStep.
	InvocationStepID string
}
