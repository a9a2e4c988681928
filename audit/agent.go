package audit

// AgentFields is what an agent-runtime call named, for the record: the ids
// in its path and the knowledge bases and models its body named.
type AgentFields struct {
	AgentID      string `json:"agent_id,omitempty"`
	AgentAliasID string `json:"agent_alias_id,omitempty"`
	FlowID       string `json:"flow_id,omitempty"`
	FlowAliasID  string `json:"flow_alias_id,omitempty"`
	// SessionID is the agent session of InvokeAgent and InvokeInlineAgent.
	SessionID string `json:"agent_session_id,omitempty"`
	// KnowledgeBases are the path's and the body's knowledge base ids, in
	// the order named (duplicates removed).
	KnowledgeBases []string `json:"knowledge_base_ids,omitempty"`
	// Models are the models the body names, as spelled there.
	Models []string `json:"agent_models,omitempty"`
}

// fields lists the string fields in record order.
func (a *AgentFields) fields() [5][2]string {
	return [5][2]string{
		{"agent_id", a.AgentID}, {"agent_alias_id", a.AgentAliasID},
		{"flow_id", a.FlowID}, {"flow_alias_id", a.FlowAliasID},
		{"agent_session_id", a.SessionID},
	}
}
