package bedrocktest

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/warden-egress/warden/bedrock/sigv4"
)

// Control-plane operation names, as the SDKs spell them.
const (
	OpGetInferenceProfile           = "GetInferenceProfile"
	OpGetProvisionedModelThroughput = "GetProvisionedModelThroughput"
	OpGetCustomModel                = "GetCustomModel"
	OpGetCustomModelDeployment      = "GetCustomModelDeployment"
	OpGetImportedModel              = "GetImportedModel"
	OpGetPromptRouter               = "GetPromptRouter"
	OpGetPrompt                     = "GetPrompt" // bedrock-agent
)

// ControlPlaneConfig configures a ControlPlane. Fixtures are keyed by ARN;
// a request naming a resource by its short id (or name) finds the fixture
// whose ARN ends in "/ID" (or whose Name equals it), as AWS accepts both.
type ControlPlaneConfig struct {
	// Credentials maps access key id -> secret. Required.
	Credentials map[string]string
	// Region, when set, is the only signing region accepted. Whatever it is,
	// a request naming a resource by ARN must be signed for the ARN's region
	// (the SDK client has to be built for the resource's region).
	Region  string
	MaxSkew time.Duration // default 5m

	InferenceProfiles      map[string]InferenceProfile      // application and system profiles
	ProvisionedModels      map[string]ProvisionedModel      // provisioned-model ARN ->
	CustomModels           map[string]CustomModel           // custom-model ARN ->
	CustomModelDeployments map[string]CustomModelDeployment // custom-model-deployment ARN ->
	ImportedModels         map[string]ImportedModel         // imported-model ARN ->
	PromptRouters          map[string]PromptRouter          // prompt-router / default-prompt-router ARN ->
	// Prompts are keyed by the prompt ARN without a version for the DRAFT,
	// and by "ARN:VERSION" for a numbered version.
	Prompts map[string]Prompt
	// Forbidden lists identifiers (ARNs) answered with 403
	// AccessDeniedException, as when Warden's role lacks the permission.
	Forbidden []string

	Logf func(format string, args ...any)
}

// InferenceProfile is a GetInferenceProfile fixture.
type InferenceProfile struct {
	Name   string
	Type   string   // "APPLICATION" or "SYSTEM_DEFINED"; default from the ARN
	Models []string // model ARNs, one per destination region
}

// ProvisionedModel is a GetProvisionedModelThroughput fixture.
type ProvisionedModel struct {
	Name               string
	ModelArn           string // the model served: a foundation or custom model ARN
	DesiredModelArn    string // default ModelArn
	FoundationModelArn string
	Status             string // default "InService"
}

// CustomModel is a GetCustomModel fixture.
type CustomModel struct {
	Name         string
	BaseModelArn string
	Status       string // default "Active"
}

// CustomModelDeployment is a GetCustomModelDeployment fixture.
type CustomModelDeployment struct {
	Name     string
	ModelArn string // the custom model deployed
	Status   string // default "Active"
}

// ImportedModel is a GetImportedModel fixture.
type ImportedModel struct {
	Name              string
	ModelArchitecture string // default "llama3"
}

// PromptRouter is a GetPromptRouter fixture.
type PromptRouter struct {
	Name     string
	Models   []string // target model (or inference profile) ARNs
	Fallback string   // fallback model ARN
	Type     string   // "custom" or "default"; default from the ARN
}

// Prompt is a GetPrompt fixture (one version of a prompt).
type Prompt struct {
	Name           string
	DefaultVariant string // default: the first variant's name
	Variants       []PromptVariant
}

// PromptVariant is one variant of a prompt.
type PromptVariant struct {
	Name    string // default "variant-N"
	ModelID string // any model identifier, including profile ARNs
	// AgentID makes the variant run on an agent (genAiResource.agent)
	// instead of a model.
	AgentID string
}

// ControlPlaneCall is one request as the control-plane emulator received it.
type ControlPlaneCall struct {
	Op          string // "" for an unknown route
	Identifier  string // the path label, percent-decoded
	Version     string // GetPrompt's promptVersion query parameter
	Method      string
	EscapedPath string
	RawQuery    string
	Region      string // the signing region
	AccessKeyID string
	SignatureOK bool
	AuthError   string
	Status      int
}

// ControlPlane is a running Bedrock control-plane emulator (bedrock and
// bedrock-agent on one listener: their paths do not collide).
type ControlPlane struct {
	URL string

	cfg       ControlPlaneConfig
	hs        *http.Server
	forbidden map[string]bool

	mu     sync.Mutex
	calls  []*ControlPlaneCall
	faults []*queuedFault
	down   bool
}

// NewControlPlane starts a control-plane emulator on 127.0.0.1:0 speaking
// the REST-JSON shapes the aws-sdk-go-v2 bedrock and bedrockagent clients
// use for the read calls that reveal the model behind an indirect model id.
//
//	cp := bedrocktest.NewControlPlane(bedrocktest.ControlPlaneConfig{
//		Credentials: map[string]string{"AKIDTEST": "secret"},
//		InferenceProfiles: map[string]bedrocktest.InferenceProfile{
//			"arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123def456": {
//				Models: []string{"arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-5-haiku-20241022-v1:0"},
//			},
//		},
//	})
//	defer cp.Close()
//	client := bedrock.New(bedrock.Options{Region: "us-east-1", BaseEndpoint: aws.String(cp.URL), Credentials: ...})
func NewControlPlane(cfg ControlPlaneConfig) *ControlPlane {
	if len(cfg.Credentials) == 0 {
		panic("bedrocktest: ControlPlaneConfig.Credentials is required")
	}
	if cfg.MaxSkew == 0 {
		cfg.MaxSkew = sigv4.DefaultMaxSkew
	}
	cp := &ControlPlane{cfg: cfg, forbidden: map[string]bool{}}
	// UpdatePrompt changes prompts while requests are served: a private copy.
	cp.cfg.Prompts = make(map[string]Prompt, len(cfg.Prompts))
	for k, v := range cfg.Prompts {
		cp.cfg.Prompts[k] = v
	}
	for _, id := range cfg.Forbidden {
		cp.forbidden[id] = true
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(fmt.Sprintf("bedrocktest: listen: %v", err))
	}
	cp.hs = &http.Server{Handler: http.HandlerFunc(cp.serve), ReadHeaderTimeout: 30 * time.Second}
	cp.URL = "http://" + ln.Addr().String()
	go cp.hs.Serve(ln) //nolint:errcheck // ends with Close
	return cp
}

// Close stops the emulator; later requests are refused at connect.
func (cp *ControlPlane) Close() { _ = cp.hs.Close() }

// Handler returns the emulator as an http.Handler (to mount it elsewhere).
func (cp *ControlPlane) Handler() http.Handler { return http.HandlerFunc(cp.serve) }

// SetDown makes every authenticated request fail with 503
// ServiceUnavailableException (true) until called with false: an outage
// that keeps the listener up.
func (cp *ControlPlane) SetDown(down bool) {
	cp.mu.Lock()
	cp.down = down
	cp.mu.Unlock()
}

// Inject queues a fault for the next matching request(s). Status, ErrorType,
// Message, Delay and ResetAfterEvents (any non-zero value drops the
// connection) apply; Op names a control-plane operation or "" for any.
func (cp *ControlPlane) Inject(f Fault) {
	n := f.Times
	if n <= 0 {
		n = 1
	}
	cp.mu.Lock()
	defer cp.mu.Unlock()
	cp.faults = append(cp.faults, &queuedFault{Fault: f, left: n})
}

// UpdatePrompt replaces the prompt fixture under key (the prompt ARN for its
// DRAFT, "ARN:VERSION" for a numbered version), as bedrock:UpdatePrompt
// re-points a prompt's DRAFT to another model; later GetPrompt calls answer
// the new fixture.
func (cp *ControlPlane) UpdatePrompt(key string, p Prompt) {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	cp.cfg.Prompts[key] = p
}

// Calls returns a copy of every request received, in arrival order.
func (cp *ControlPlane) Calls() []ControlPlaneCall {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	out := make([]ControlPlaneCall, len(cp.calls))
	for i, c := range cp.calls {
		out[i] = *c
	}
	return out
}

// CallCount returns how many requests for op (any when "") were received.
func (cp *ControlPlane) CallCount(op string) int {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	n := 0
	for _, c := range cp.calls {
		if op == "" || c.Op == op {
			n++
		}
	}
	return n
}

// Reset clears recorded calls and queued faults and ends an outage.
func (cp *ControlPlane) Reset() {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	cp.calls, cp.faults, cp.down = nil, nil, false
}

func (cp *ControlPlane) takeFault(op string) *Fault {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	for i, q := range cp.faults {
		if q.Op != "" && q.Op != op {
			continue
		}
		q.left--
		if q.left <= 0 {
			cp.faults = append(cp.faults[:i], cp.faults[i+1:]...)
		}
		f := q.Fault
		return &f
	}
	return nil
}

// cpRoute maps a control-plane path (escaped, as sent) to an operation and
// its decoded identifier.
func cpRoute(method, escaped string) (op, id string, ok bool) {
	if method != http.MethodGet {
		return "", "", false
	}
	segs := strings.Split(strings.TrimPrefix(escaped, "/"), "/")
	label := func(s string) (string, bool) {
		v, err := url.PathUnescape(s)
		return v, err == nil && v != ""
	}
	switch {
	case len(segs) == 2 && segs[0] == "inference-profiles":
		op = OpGetInferenceProfile
	case len(segs) == 2 && segs[0] == "provisioned-model-throughput":
		op = OpGetProvisionedModelThroughput
	case len(segs) == 2 && segs[0] == "custom-models":
		op = OpGetCustomModel
	case len(segs) == 3 && segs[0] == "model-customization" && segs[1] == "custom-model-deployments":
		op, segs = OpGetCustomModelDeployment, segs[1:]
	case len(segs) == 2 && segs[0] == "imported-models":
		op = OpGetImportedModel
	case len(segs) == 2 && segs[0] == "prompt-routers":
		op = OpGetPromptRouter
	case len(segs) == 3 && segs[0] == "prompts" && segs[2] == "": // "/prompts/{id}/"
		op = OpGetPrompt
	default:
		return "", "", false
	}
	id, ok = label(segs[1])
	return op, id, ok
}

func (cp *ControlPlane) logf(format string, args ...any) {
	if cp.cfg.Logf != nil {
		cp.cfg.Logf(format, args...)
	}
}

func (cp *ControlPlane) serve(rw http.ResponseWriter, r *http.Request) {
	w := &statusWriter{ResponseWriter: rw}
	w.Header().Set("X-Amzn-Requestid", newUUID())
	escaped := wirePath(r)
	op, id, known := cpRoute(r.Method, escaped)
	abOp, abSegs, anthropicBedrock := anthropicBedrockRoute(escaped)
	if anthropicBedrock {
		op, known = abOp, true
	}
	call := &ControlPlaneCall{Op: op, Identifier: id, Method: r.Method, EscapedPath: escaped, RawQuery: r.URL.RawQuery}
	if op == OpGetPrompt {
		call.Version = r.URL.Query().Get("promptVersion")
	}
	cp.mu.Lock()
	cp.calls = append(cp.calls, call)
	cp.mu.Unlock()
	defer func() {
		cp.mu.Lock()
		call.Status = w.status
		cp.mu.Unlock()
		cp.logf("bedrocktest control plane: %s %s?%s -> %d (op=%s id=%q region=%s auth=%v %s)",
			r.Method, escaped, r.URL.RawQuery, w.status, op, id, call.Region, call.SignatureOK, call.AuthError)
	}()
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		writeError(w, http.StatusBadRequest, "ValidationException", "Could not read the request body.")
		return
	}

	auth := authenticate(r, body, cp.cfg.Credentials, cp.cfg.MaxSkew, "bedrock", cp.cfg.Region)
	if auth.err != nil {
		cp.mu.Lock()
		call.AuthError = auth.err.Error()
		if a := auth.claimed; a != nil {
			call.AccessKeyID, call.Region = a.AccessKeyID, a.Region
		}
		cp.mu.Unlock()
		writeError(w, auth.apiErr.Status, auth.apiErr.Code, auth.apiErr.Message)
		return
	}
	res := auth.res
	cp.mu.Lock()
	call.SignatureOK, call.AccessKeyID, call.Region = true, res.AccessKeyID, res.Region
	down := cp.down
	cp.mu.Unlock()

	if !known {
		writeError(w, http.StatusNotFound, "UnknownOperationException", "")
		return
	}
	if down {
		writeError(w, http.StatusServiceUnavailable, "ServiceUnavailableException", "Service is temporarily unavailable.")
		return
	}
	if anthropicBedrock {
		serveAnthropicBedrock(w, r, abSegs)
		return
	}
	if f := cp.takeFault(op); f != nil {
		if f.Delay > 0 {
			t := time.NewTimer(f.Delay)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return
			}
		}
		if f.ResetAfterEvents != 0 {
			abort(w, r)
		}
		if f.Status != 0 {
			typ := f.ErrorType
			if typ == "" {
				typ = errorTypeForStatus(f.Status)
			}
			msg := f.Message
			if msg == "" {
				msg = defaultMessage(typ)
			}
			writeError(w, f.Status, typ, msg)
			return
		}
	}
	// A resource named by ARN lives in the ARN's region: a client built for
	// another region would reach another regional endpoint on AWS.
	if strings.HasPrefix(id, "arn:") {
		if parts := strings.SplitN(id, ":", 6); len(parts) == 6 && parts[3] != res.Region {
			writeError(w, http.StatusBadRequest, "ValidationException",
				fmt.Sprintf("The resource %s is in region %s, but the request was signed for %s.", id, parts[3], res.Region))
			return
		}
	}
	if cp.forbidden[id] {
		writeError(w, http.StatusForbidden, "AccessDeniedException",
			fmt.Sprintf("User is not authorized to perform: bedrock:%s on resource: %s", op, id))
		return
	}
	cp.dispatch(w, op, id, call.Version)
}

func (cp *ControlPlane) dispatch(w http.ResponseWriter, op, id, version string) {
	now := time.Now().UTC().Truncate(time.Second)
	ts := now.Add(-24 * time.Hour).Format(time.RFC3339)
	switch op {
	case OpGetInferenceProfile:
		arn, p, ok := lookup(cp.cfg.InferenceProfiles, id, func(p InferenceProfile) string { return p.Name })
		if !ok {
			notFound(w, "Inference profile "+id+" not found.")
			return
		}
		typ := p.Type
		if typ == "" {
			typ = "APPLICATION"
			if strings.Contains(arn, ":inference-profile/") {
				typ = "SYSTEM_DEFINED"
			}
		}
		models := make([]map[string]string, 0, len(p.Models))
		for _, m := range p.Models {
			models = append(models, map[string]string{"modelArn": m})
		}
		writeJSON(w, map[string]any{
			"inferenceProfileName": orDefault(p.Name, resourceID(arn)),
			"description":          "Fixture served by bedrocktest.",
			"createdAt":            ts,
			"updatedAt":            ts,
			"inferenceProfileArn":  arn,
			"models":               models,
			"inferenceProfileId":   resourceID(arn),
			"status":               "ACTIVE",
			"type":                 typ,
		})
	case OpGetProvisionedModelThroughput:
		arn, p, ok := lookup(cp.cfg.ProvisionedModels, id, func(p ProvisionedModel) string { return p.Name })
		if !ok {
			notFound(w, "Provisioned model "+id+" not found.")
			return
		}
		out := map[string]any{
			"modelUnits":               1,
			"desiredModelUnits":        1,
			"provisionedModelName":     orDefault(p.Name, resourceID(arn)),
			"provisionedModelArn":      arn,
			"modelArn":                 p.ModelArn,
			"desiredModelArn":          orDefault(p.DesiredModelArn, p.ModelArn),
			"status":                   orDefault(p.Status, "InService"),
			"creationTime":             ts,
			"lastModifiedTime":         ts,
			"commitmentDuration":       "OneMonth",
			"commitmentExpirationTime": now.Add(30 * 24 * time.Hour).Format(time.RFC3339),
		}
		if p.FoundationModelArn != "" {
			out["foundationModelArn"] = p.FoundationModelArn
		}
		writeJSON(w, out)
	case OpGetCustomModel:
		arn, m, ok := lookup(cp.cfg.CustomModels, id, func(m CustomModel) string { return m.Name })
		if !ok {
			notFound(w, "Could not find model "+id+".")
			return
		}
		name := orDefault(m.Name, resourceID(arn))
		out := map[string]any{
			"modelArn":           arn,
			"modelName":          name,
			"jobName":            name + "-job",
			"jobArn":             strings.Replace(arn, ":custom-model/", ":model-customization-job/", 1),
			"customizationType":  "FINE_TUNING",
			"hyperParameters":    map[string]string{"epochCount": "2", "batchSize": "1", "learningRate": "0.00001"},
			"trainingDataConfig": map[string]string{"s3Uri": "s3://bedrocktest-training/data.jsonl"},
			"outputDataConfig":   map[string]string{"s3Uri": "s3://bedrocktest-training/output/"},
			"trainingMetrics":    map[string]float64{"trainingLoss": 0.42},
			"validationMetrics":  []any{},
			"creationTime":       ts,
			"modelStatus":        orDefault(m.Status, "Active"),
		}
		if m.BaseModelArn != "" {
			out["baseModelArn"] = m.BaseModelArn
		}
		writeJSON(w, out)
	case OpGetCustomModelDeployment:
		arn, d, ok := lookup(cp.cfg.CustomModelDeployments, id, func(d CustomModelDeployment) string { return d.Name })
		if !ok {
			notFound(w, "Custom model deployment "+id+" not found.")
			return
		}
		writeJSON(w, map[string]any{
			"customModelDeploymentArn": arn,
			"modelDeploymentName":      orDefault(d.Name, resourceID(arn)),
			"modelArn":                 d.ModelArn,
			"createdAt":                ts,
			"status":                   orDefault(d.Status, "Active"),
			"description":              "Fixture served by bedrocktest.",
			"lastUpdatedAt":            ts,
		})
	case OpGetImportedModel:
		arn, m, ok := lookup(cp.cfg.ImportedModels, id, func(m ImportedModel) string { return m.Name })
		if !ok {
			notFound(w, "Could not find model "+id+".")
			return
		}
		name := orDefault(m.Name, resourceID(arn))
		writeJSON(w, map[string]any{
			"modelArn":          arn,
			"modelName":         name,
			"jobName":           name + "-import",
			"jobArn":            strings.Replace(arn, ":imported-model/", ":model-import-job/", 1),
			"modelDataSource":   map[string]any{"s3DataSource": map[string]string{"s3Uri": "s3://bedrocktest-import/" + name + "/"}},
			"creationTime":      ts,
			"modelArchitecture": orDefault(m.ModelArchitecture, "llama3"),
			"instructSupported": true,
			"customModelUnits":  map[string]any{"customModelUnitsPerModelCopy": 1, "customModelUnitsVersion": "1.0"},
		})
	case OpGetPromptRouter:
		p, ok := cp.cfg.PromptRouters[id]
		if !ok {
			notFound(w, "Prompt router "+id+" not found.")
			return
		}
		typ := p.Type
		if typ == "" {
			typ = "custom"
			if strings.Contains(id, ":default-prompt-router/") {
				typ = "default"
			}
		}
		models := make([]map[string]string, 0, len(p.Models))
		for _, m := range p.Models {
			models = append(models, map[string]string{"modelArn": m})
		}
		out := map[string]any{
			"promptRouterName": orDefault(p.Name, resourceID(id)),
			"routingCriteria":  map[string]float64{"responseQualityDifference": 0.25},
			"description":      "Fixture served by bedrocktest.",
			"createdAt":        ts,
			"updatedAt":        ts,
			"promptRouterArn":  id,
			"models":           models,
			"status":           "AVAILABLE",
			"type":             typ,
		}
		if p.Fallback != "" {
			out["fallbackModel"] = map[string]string{"modelArn": p.Fallback}
		}
		writeJSON(w, out)
	case OpGetPrompt:
		cp.getPrompt(w, id, version, ts)
	}
}

func (cp *ControlPlane) getPrompt(w http.ResponseWriter, id, version, ts string) {
	// The identifier is a 10-character id or a prompt ARN, which may carry
	// its own ":VERSION"; promptVersion, when given, wins.
	base := id
	if strings.HasPrefix(id, "arn:") {
		if i := strings.LastIndex(id, "/"); i >= 0 {
			if j := strings.IndexByte(id[i:], ':'); j >= 0 {
				base = id[:i+j]
				if version == "" {
					version = id[i+j+1:]
				}
			}
		}
	}
	arn, ver, p, ok := cp.findPrompt(base, version)
	if !ok {
		if arn == "" {
			notFound(w, "Prompt "+id+" not found.")
		} else {
			notFound(w, "Prompt "+id+" (version "+ver+") not found.")
		}
		return
	}
	variants := make([]map[string]any, 0, len(p.Variants))
	for i, v := range p.Variants {
		out := map[string]any{
			"name":         orDefault(v.Name, fmt.Sprintf("variant-%d", i+1)),
			"templateType": "TEXT",
			"templateConfiguration": map[string]any{"text": map[string]any{
				"text":           "Summarise {{document}}.",
				"inputVariables": []map[string]string{{"name": "document"}},
			}},
			"inferenceConfiguration": map[string]any{"text": map[string]any{"temperature": 0.2, "maxTokens": 512}},
		}
		if v.ModelID != "" {
			out["modelId"] = v.ModelID
		}
		if v.AgentID != "" {
			out["genAiResource"] = map[string]any{"agent": map[string]string{"agentIdentifier": v.AgentID}}
		}
		variants = append(variants, out)
	}
	def := p.DefaultVariant
	if def == "" && len(variants) > 0 {
		def = variants[0]["name"].(string)
	}
	respARN := arn
	if ver != "DRAFT" {
		respARN = arn + ":" + ver
	}
	writeJSON(w, map[string]any{
		"name":           orDefault(p.Name, resourceID(arn)),
		"description":    "Fixture served by bedrocktest.",
		"defaultVariant": def,
		"variants":       variants,
		"id":             resourceID(arn),
		"arn":            respARN,
		"version":        ver,
		"createdAt":      ts,
		"updatedAt":      ts,
	})
}

// findPrompt finds the prompt fixture for base (an ARN without a version,
// or a 10-character id) at version ("" or "DRAFT" for the DRAFT). arn is ""
// when no prompt has that id.
func (cp *ControlPlane) findPrompt(base, version string) (arn, ver string, p Prompt, ok bool) {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	arn = base
	if !strings.HasPrefix(base, "arn:") {
		arn = ""
		for k := range cp.cfg.Prompts {
			if strings.HasSuffix(k, ":prompt/"+base) {
				arn = k
				break
			}
		}
		if arn == "" {
			return "", "", Prompt{}, false
		}
	}
	key, ver := arn, "DRAFT"
	if version != "" && version != "DRAFT" {
		key, ver = arn+":"+version, version
	}
	p, ok = cp.cfg.Prompts[key]
	return arn, ver, p, ok
}

// lookup finds a fixture by ARN, by the ARN's resource id, or by name,
// trying keys in sorted order so an ambiguous short id answers consistently.
func lookup[T any](m map[string]T, id string, name func(T) string) (string, T, bool) {
	if v, ok := m[id]; ok {
		return id, v, true
	}
	var zero T
	if strings.HasPrefix(id, "arn:") {
		return "", zero, false
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if resourceID(k) == id || (name(m[k]) != "" && name(m[k]) == id) {
			return k, m[k], true
		}
	}
	return "", zero, false
}

// resourceID is everything after the resource type in an ARN
// ("…:application-inference-profile/abc123def456" → "abc123def456").
func resourceID(arn string) string {
	if i := strings.IndexByte(arn, '/'); i >= 0 {
		return arn[i+1:]
	}
	return arn
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func notFound(w http.ResponseWriter, msg string) {
	writeError(w, http.StatusNotFound, "ResourceNotFoundException", msg)
}
