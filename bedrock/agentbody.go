package bedrock

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// AgentFacts is what an agent-runtime request body names that policy must
// check before Bedrock runs it with Warden's credentials: every model it can
// make Bedrock run, the knowledge bases it reads, the agents it calls, the S3
// objects and Lambda functions it reaches, the built-in tools it enables.
// Each fact carries where it was found (a path such as
// "collaborators[0].foundationModel") for the decision's reason and the
// audit record.
type AgentFacts struct {
	Models         []AgentFact // foundationModel, modelArn, targetModelId, modelId
	KnowledgeBases []AgentFact // knowledgeBaseId, knowledgeBaseArn (the id taken out of the ARN)
	AgentAliases   []AgentFact // agentAliasArn (inline agent collaborators)
	S3             []AgentFact // s3://bucket/key: uri values, s3 {s3BucketName, s3ObjectKey}
	Lambdas        []AgentFact // actionGroupExecutor.lambda, promptOverrideConfiguration.overrideLambda
	BuiltinTools   []AgentFact // parentActionGroupSignature (AMAZON.CodeInterpreter, AMAZON.UserInput, ANTHROPIC.Computer…)
	Guardrails     []AgentFact // guardrailIdentifier, guardrailId
	// MemoryID is InvokeAgent's body memoryId; SessionID RetrieveAndGenerate's
	// body sessionId ("" when absent).
	MemoryID, SessionID string
}

// AgentFact is one identifier named in a body and where.
type AgentFact struct {
	Path, Value string
}

// maxAgentDepth bounds nesting in agent bodies (the deepest SDK shape is
// about 12 levels).
const maxAgentDepth = 64

// agentFactKey says what a member name holds; "" for none.
func agentFactKey(k string) string {
	switch k {
	case "foundationModel", "modelArn", "targetModelId", "modelId":
		return "model"
	case "knowledgeBaseId", "knowledgeBaseArn":
		return "kb"
	case "agentAliasArn":
		return "agentAlias"
	case "uri":
		return "uri"
	case "s3BucketName", "s3ObjectKey":
		return "s3part"
	case "lambda", "overrideLambda":
		return "lambda"
	case "parentActionGroupSignature":
		return "builtin"
	case "guardrailIdentifier", "guardrailId":
		return "guardrail"
	case "memoryId", "sessionId":
		return "session"
	}
	return ""
}

// agentOpaque names members whose values are the caller's data, passed to a
// model or a flow as they are: facts are not looked for inside them (their
// keys mean nothing to Bedrock), though they must still be well-formed.
func agentOpaque(k string) bool {
	switch k {
	case "additionalModelRequestFields", "document", "json", "payload", "sessionAttributes", "promptSessionAttributes", "sessionMetadata", "metadata", "filter":
		return true
	}
	return false
}

// AgentRequestFacts reads an agent-runtime request body strictly: one
// valid-UTF-8 JSON object, no duplicate keys in any object, no key that
// differs only in case from one Warden reads (encoding/json and Bedrock may
// resolve either differently, letting a caller be authorised for one model
// and run another), and every fact a string. An empty body is an empty
// object. Errors are ValidationException and name the offending path.
func AgentRequestFacts(op Operation, body []byte) (AgentFacts, error) {
	var f AgentFacts
	if len(bytes.TrimSpace(body)) == 0 {
		return f, nil
	}
	if !utf8.Valid(body) {
		return f, Validation("%s body is not valid UTF-8", op)
	}
	w := agentWalker{op: op, dec: json.NewDecoder(bytes.NewReader(body)), f: &f}
	w.dec.UseNumber()
	tok, err := w.dec.Token()
	if err != nil || tok != json.Delim('{') {
		return AgentFacts{}, Validation("%s body is not a JSON object", op)
	}
	if err := w.object("", 1, false); err != nil {
		return AgentFacts{}, err
	}
	if _, err := w.dec.Token(); !errors.Is(err, io.EOF) {
		return AgentFacts{}, Validation("%s body has data after the JSON object", op)
	}
	return f, nil
}

type agentWalker struct {
	op  Operation
	dec *json.Decoder
	f   *AgentFacts
}

func (w *agentWalker) bad(path, format string, args ...any) error {
	if path == "" {
		path = "(the body)"
	}
	return Validation("%s body: %s: %s", w.op, quoteTrunc(path), fmt.Sprintf(format, args...))
}

func join(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

// object walks the members of an object whose '{' was read.
func (w *agentWalker) object(path string, depth int, opaque bool) error {
	if depth > maxAgentDepth {
		return w.bad(path, "nested more than %d levels", maxAgentDepth)
	}
	seen := map[string]bool{}
	var bucket, key *string
	for w.dec.More() {
		tok, err := w.dec.Token()
		if err != nil {
			return w.bad(path, "%v", err)
		}
		k := tok.(string) // object keys are strings
		if seen[k] {
			return w.bad(join(path, k), "duplicate key")
		}
		seen[k] = true
		if lk := lowerFactKey(k); !opaque && lk != "" && lk != k {
			return w.bad(join(path, k), "ambiguous key: differs from %q only in case", lk)
		}
		p := join(path, k)
		kind := ""
		if !opaque {
			kind = agentFactKey(k)
		}
		if kind == "" {
			if err := w.value(p, depth, opaque || agentOpaque(k)); err != nil {
				return err
			}
			continue
		}
		v, err := w.str(p)
		if err != nil {
			return err
		}
		switch kind {
		case "model":
			w.f.Models = append(w.f.Models, AgentFact{p, v})
		case "kb":
			id := v
			if k == "knowledgeBaseArn" {
				a, why := parseARN(v)
				kb, ok := strings.CutPrefix(a.Resource, "knowledge-base/")
				if why != "" || a.Service != "bedrock" || !ok || !validAgentID(kb) {
					return w.bad(p, "%q is not a knowledge base ARN", quoteTrunc(v))
				}
				id = kb
			}
			w.f.KnowledgeBases = append(w.f.KnowledgeBases, AgentFact{p, id})
		case "agentAlias":
			w.f.AgentAliases = append(w.f.AgentAliases, AgentFact{p, v})
		case "uri":
			w.f.S3 = append(w.f.S3, AgentFact{p, v})
		case "s3part":
			if k == "s3BucketName" {
				bucket = &v
			} else {
				key = &v
			}
		case "lambda":
			w.f.Lambdas = append(w.f.Lambdas, AgentFact{p, v})
		case "builtin":
			w.f.BuiltinTools = append(w.f.BuiltinTools, AgentFact{p, v})
		case "guardrail":
			w.f.Guardrails = append(w.f.Guardrails, AgentFact{p, v})
		case "session":
			// Only the top-level body members carry ownership.
			switch {
			case path == "" && k == "memoryId":
				w.f.MemoryID = v
			case path == "" && k == "sessionId":
				w.f.SessionID = v
			}
		}
	}
	if bucket != nil || key != nil {
		if bucket == nil || key == nil || *bucket == "" || *key == "" {
			return w.bad(path, "an S3 identifier needs both s3BucketName and s3ObjectKey")
		}
		w.f.S3 = append(w.f.S3, AgentFact{path, "s3://" + *bucket + "/" + *key})
	}
	if _, err := w.dec.Token(); err != nil { // '}'
		return w.bad(path, "%v", err)
	}
	return nil
}

// lowerFactKey returns the fact key k matches case-insensitively ("" if none).
func lowerFactKey(k string) string {
	for _, f := range []string{"foundationModel", "modelArn", "targetModelId", "modelId", "knowledgeBaseId", "knowledgeBaseArn",
		"agentAliasArn", "uri", "s3BucketName", "s3ObjectKey", "lambda", "overrideLambda", "parentActionGroupSignature", "guardrailIdentifier", "guardrailId", "memoryId", "sessionId"} {
		if strings.EqualFold(f, k) {
			return f
		}
	}
	return ""
}

func (w *agentWalker) value(path string, depth int, opaque bool) error {
	tok, err := w.dec.Token()
	if err != nil {
		return w.bad(path, "%v", err)
	}
	switch tok {
	case json.Delim('{'):
		return w.object(path, depth+1, opaque)
	case json.Delim('['):
		if depth+1 > maxAgentDepth {
			return w.bad(path, "nested more than %d levels", maxAgentDepth)
		}
		for i := 0; w.dec.More(); i++ {
			if err := w.value(path+"["+strconv.Itoa(i)+"]", depth+1, opaque); err != nil {
				return err
			}
		}
		if _, err := w.dec.Token(); err != nil { // ']'
			return w.bad(path, "%v", err)
		}
	}
	return nil
}

// str reads a fact's value, which must be a non-empty string without
// control characters.
func (w *agentWalker) str(path string) (string, error) {
	tok, err := w.dec.Token()
	if err != nil {
		return "", w.bad(path, "%v", err)
	}
	s, ok := tok.(string)
	if !ok {
		return "", w.bad(path, "want a string")
	}
	if s == "" || hasControl(s) {
		return "", w.bad(path, "want a non-empty string without control characters")
	}
	return s, nil
}
