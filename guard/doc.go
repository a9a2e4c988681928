// Package guard applies Warden's guardrails to a call's content: it
// compiles the guards of the config file (Config, one per name under
// guards:) for each app, runs the input guards over a request (block, mask
// or record; dry-run records what it would have blocked), the output guards
// over a unary answer and, event by event with a bounded hold-back, over a
// streamed one, and calls an Amazon Bedrock guardrail (ApplyGuardrail)
// through the Guardrail interface for the bedrock: detector.
//
// A call is described by plain values (the body, its extracted texts, the
// operation and model family; package bedrock extracts and frames) and the
// answer is a typed Outcome: findings, the masked body, the block message
// and rule. Package proxy relays the HTTP and fills the audit record from
// it. The detectors themselves are in guard/detect, which imports no Warden
// package.
package guard
