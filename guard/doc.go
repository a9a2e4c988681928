// Package guard will hold Warden's prompt and response guardrails: detectors
// (PII, words, regexes, injection heuristics), actions (block, mask, record),
// the streaming scanner and the Bedrock Guardrails backend. It is empty in
// this release; the request path already buffers request bodies whole and
// relays streams frame by frame so guards can be inserted without changing it.
package guard
