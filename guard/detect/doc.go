// Package detect holds Warden's guardrail detectors: text normalisation and
// the detectors (PII with Bedrock Guardrails' type names, word and phrase
// lists, custom regular expressions, a heuristic prompt injection detector),
// the Scanner that runs them, and masking.
//
// Everything here is a pure function of its input: text extraction from
// request and response bodies lives in package bedrock, guard application
// (block, mask, record, the stream hold-back) in package guard, and the HTTP
// relay in package proxy. Findings carry types and offsets, never the
// matched values, and their offsets refer to the normalised text.
package detect
