package docs

import (
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"unicode"

	"gopkg.in/yaml.v3"
)

// docFiles are the Markdown files the checks cover, relative to the root.
func docFiles(t *testing.T, root string) []string {
	t.Helper()
	files := []string{"README.md", "ARCHITECTURE.md", "deploy/README.md"}
	more, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	// deploy/'s own READMEs (deploy/athena/README.md, …).
	sub, err := filepath.Glob(filepath.Join(root, "deploy", "*", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	more = append(more, sub...)
	for _, f := range more {
		rel, _ := filepath.Rel(root, f)
		files = append(files, filepath.ToSlash(rel))
	}
	return files
}

func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}

// doc is a Markdown file split into what the checks read: its prose (fenced
// code blocks dropped, line numbers kept) and its heading anchors.
type doc struct {
	lines   []string // prose lines; fenced lines are blanked
	anchors map[string]bool
}

var (
	fenceRe   = regexp.MustCompile("^\\s*(```|~~~)")
	headingRe = regexp.MustCompile(`^#{1,6}\s+(.*?)\s*#*\s*$`)
	codeRe    = regexp.MustCompile("`+([^`]+)`+")
	// [text](target) and ![alt](target), with an optional "title".
	linkRe = regexp.MustCompile(`!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)`)
	// mdLinkRe is a link inside heading text, rendered as its text.
	mdLinkRe = regexp.MustCompile(`\[([^\]]*)\]\([^)]*\)`)
)

func parseDoc(text string) doc {
	d := doc{anchors: map[string]bool{}}
	seen := map[string]int{}
	fenced := false
	for _, line := range strings.Split(text, "\n") {
		if fenceRe.MatchString(line) {
			fenced = !fenced
			d.lines = append(d.lines, "")
			continue
		}
		if fenced {
			d.lines = append(d.lines, "")
			continue
		}
		d.lines = append(d.lines, line)
		if m := headingRe.FindStringSubmatch(line); m != nil {
			slug := slugify(m[1])
			if n := seen[slug]; n > 0 {
				d.anchors[fmt.Sprintf("%s-%d", slug, n)] = true
			} else {
				d.anchors[slug] = true
			}
			seen[slug]++
		}
	}
	return d
}

// slugify is GitHub's heading anchor: the rendered text lowercased, every
// character but letters, digits, spaces, hyphens and underscores dropped,
// spaces turned into hyphens (duplicates get -1, -2, … in parseDoc).
func slugify(heading string) string {
	text := mdLinkRe.ReplaceAllString(heading, "$1")
	var b strings.Builder
	for _, r := range strings.ToLower(text) {
		switch {
		case unicode.IsLetter(r), unicode.IsDigit(r), r == '-', r == '_':
			b.WriteRune(r)
		case r == ' ':
			b.WriteByte('-')
		}
	}
	return b.String()
}

// links returns the link targets of a prose line; code spans hold none.
func links(line string) []string {
	var out []string
	for _, m := range linkRe.FindAllStringSubmatch(stripCode(line), -1) {
		out = append(out, m[1])
	}
	return out
}

// stripCode blanks code spans but keeps link syntax around them intact, so
// [`deploy/`](deploy/) is still a link.
func stripCode(line string) string {
	return codeRe.ReplaceAllString(line, "code")
}

func TestLinksResolve(t *testing.T) {
	root := repoRoot(t)
	cache := map[string]doc{}
	load := func(rel string) (doc, error) {
		if d, ok := cache[rel]; ok {
			return d, nil
		}
		b, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(rel)))
		if err != nil {
			return doc{}, err
		}
		d := parseDoc(string(b))
		cache[rel] = d
		return d, nil
	}
	for _, file := range docFiles(t, root) {
		d, err := load(file)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range d.lines {
			for _, target := range links(line) {
				if err := checkLink(root, file, target, load); err != nil {
					t.Errorf("%s:%d: link %s: %v", file, i+1, target, err)
				}
			}
		}
	}
}

var schemeRe = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9+.-]*:`)

func checkLink(root, file, target string, load func(string) (doc, error)) error {
	if schemeRe.MatchString(target) {
		return nil // http(s), mailto: not this test's business
	}
	ref, anchor, _ := strings.Cut(target, "#")
	rel := file
	if ref != "" {
		if strings.HasPrefix(ref, "/") {
			return fmt.Errorf("absolute path: links must be relative to the file")
		}
		rel = path.Clean(path.Join(path.Dir(file), ref))
		if rel == ".." || strings.HasPrefix(rel, "../") {
			return fmt.Errorf("points outside the repository")
		}
		if _, err := os.Stat(filepath.Join(root, filepath.FromSlash(rel))); err != nil {
			return fmt.Errorf("%s does not exist", rel)
		}
	}
	if anchor == "" {
		return nil
	}
	if !strings.HasSuffix(rel, ".md") {
		return fmt.Errorf("anchor #%s on %s, which is not Markdown", anchor, rel)
	}
	d, err := load(rel)
	if err != nil {
		return err
	}
	if !d.anchors[anchor] {
		known := make([]string, 0, len(d.anchors))
		for a := range d.anchors {
			known = append(known, a)
		}
		sort.Strings(known)
		return fmt.Errorf("no heading in %s has the anchor #%s (anchors: %s)", rel, anchor, strings.Join(known, ", "))
	}
	return nil
}

// schemaNode is the part of a JSON Schema the key walk needs.
type schemaNode struct {
	Ref                  string                 `json:"$ref"`
	Type                 any                    `json:"type"`
	Properties           map[string]*schemaNode `json:"properties"`
	AdditionalProperties json.RawMessage        `json:"additionalProperties"`
	Items                *schemaNode            `json:"items"`
}

type schema struct {
	Ref  string                 `json:"$ref"`
	Defs map[string]*schemaNode `json:"$defs"`
}

func loadSchema(t *testing.T, root string) (*schema, *schemaNode) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "deploy", "warden.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s schema
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("deploy/warden.schema.json: %v", err)
	}
	top := s.resolve(&schemaNode{Ref: s.Ref})
	if top == nil || len(top.Properties) == 0 {
		t.Fatalf("deploy/warden.schema.json: %q names no object with properties", s.Ref)
	}
	return &s, top
}

func (s *schema) resolve(n *schemaNode) *schemaNode {
	for n != nil && n.Ref != "" {
		n = s.Defs[strings.TrimPrefix(n.Ref, "#/$defs/")]
	}
	return n
}

// mapValue is the schema of a map's values, or nil when n is not a map.
func (s *schema) mapValue(n *schemaNode) *schemaNode {
	raw := strings.TrimSpace(string(n.AdditionalProperties))
	if raw == "" || raw == "false" || raw == "true" {
		return nil
	}
	var v schemaNode
	if err := json.Unmarshal(n.AdditionalProperties, &v); err != nil {
		return nil
	}
	return s.resolve(&v)
}

var (
	// keyCandidateRe: a code span that reads as a config key path: a
	// lowercase first segment, then .segment or [] / [N] steps. Segments are
	// lowercase names, globs (limits.*_body_bytes) or an ALL-CAPS placeholder
	// for a map key (guards.NAME.bedrock). Mixed case (audit.Record) is Go.
	keyCandidateRe = regexp.MustCompile(`^[a-z][a-z0-9_]*(?:\[\d*\]|\.(?:[a-z0-9_*]+|[A-Z][A-Z0-9_]*))+$`)
	keyStepRe      = regexp.MustCompile(`\[\d*\]|\.[^.\[]+|^[^.\[]+`)
	// fileNameRe: models.go, ca.pem are files, not keys.
	fileNameRe = regexp.MustCompile(`\.(go|md|json|ya?ml|sh|txt|pem|key|pub|gz|jsonl|html)$`)
)

// keyCandidate cuts a code span to the key path it starts with
// (`upstream.signing: passthrough` → upstream.signing), or "".
func keyCandidate(span string) string {
	k := span
	if i := strings.IndexAny(k, " :="); i >= 0 {
		k = k[:i]
	}
	if !keyCandidateRe.MatchString(k) || fileNameRe.MatchString(k) {
		return ""
	}
	return k
}

// checkKey walks key through the schema; globs match any property they fit.
func (s *schema) checkKey(top *schemaNode, key string) error {
	nodes := []*schemaNode{top}
	for _, step := range keyStepRe.FindAllString(key, -1) {
		var next []*schemaNode
		for _, n := range nodes {
			next = append(next, s.step(n, step)...)
		}
		if len(next) == 0 {
			return fmt.Errorf("%q is not in deploy/warden.schema.json (no %q there)", key, strings.TrimPrefix(step, "."))
		}
		nodes = next
	}
	return nil
}

func (s *schema) step(n *schemaNode, step string) []*schemaNode {
	if strings.HasPrefix(step, "[") {
		if n.Items == nil {
			return nil
		}
		return []*schemaNode{s.resolve(n.Items)}
	}
	name := strings.TrimPrefix(step, ".")
	if v := s.mapValue(n); v != nil {
		return []*schemaNode{v} // a map: any key, placeholders included
	}
	var out []*schemaNode
	for prop, child := range n.Properties {
		if ok, _ := path.Match(name, prop); ok {
			out = append(out, s.resolve(child))
		}
	}
	return out
}

func TestConfigKeysExist(t *testing.T) {
	root := repoRoot(t)
	s, top := loadSchema(t, root)
	topKeys := make([]string, 0, len(top.Properties))
	for k := range top.Properties {
		topKeys = append(topKeys, k)
	}
	checked := 0
	for _, file := range docFiles(t, root) {
		b, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(file)))
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range parseDoc(string(b)).lines {
			for _, m := range codeRe.FindAllStringSubmatch(line, -1) {
				key := keyCandidate(m[1])
				if key == "" {
					continue
				}
				first := keyStepRe.FindString(key)
				if !slices.Contains(topKeys, first) {
					continue // k8s.namespace, bedrock.ExtractRequest: not config
				}
				checked++
				if err := s.checkKey(top, key); err != nil {
					t.Errorf("%s:%d: `%s`: %v", file, i+1, m[1], err)
				}
			}
		}
	}
	t.Logf("%d config keys checked", checked)
	if checked < 50 {
		t.Errorf("only %d config keys found in the docs: is the key pattern still matching?", checked)
	}
}

func TestSlugify(t *testing.T) {
	for in, want := range map[string]string{
		"Sinks (`audit.sinks`)":                   "sinks-auditsinks",
		"Audit report: `warden audit report`":     "audit-report-warden-audit-report",
		"Forward-proxy and transparent modes":     "forward-proxy-and-transparent-modes",
		"The record (schema v2)":                  "the-record-schema-v2",
		"1. Going around Warden":                  "1-going-around-warden",
		"See [deploy](deploy/README.md) for more": "see-deploy-for-more",
	} {
		if got := slugify(in); got != want {
			t.Errorf("slugify(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestKeyCandidate(t *testing.T) {
	for in, want := range map[string]string{
		"limits.max_body_bytes":           "limits.max_body_bytes",
		"apps[].match.tags: {k: v}":       "apps[].match.tags",
		"upstream.signing: passthrough":   "upstream.signing",
		"guards.NAME.bedrock: {id: ID}":   "guards.NAME.bedrock",
		"audit.sinks[0].s3.bucket":        "audit.sinks[0].s3.bucket",
		"identity.*.lookup_limits":        "identity.*.lookup_limits",
		"audit.Record":                    "",
		"bedrock.ExtractRequest":          "",
		"proxy/pipeline.go":               "",
		"mode":                            "",
		"models.go":                       "",
		"ca.pem":                          "",
		"warden policy validate --config": "",
	} {
		if got := keyCandidate(in); got != want {
			t.Errorf("keyCandidate(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestSchemaKeysDocumented is the other direction: every key of the schema
// is named somewhere in the docs, as its path in a code span or by its own
// name (in a table row, a YAML example or prose), so a new key cannot ship
// undocumented.
func TestSchemaKeysDocumented(t *testing.T) {
	root := repoRoot(t)
	s, top := loadSchema(t, root)
	var all strings.Builder
	for _, file := range docFiles(t, root) {
		b, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(file)))
		if err != nil {
			t.Fatal(err)
		}
		all.WriteString(string(b))
		all.WriteByte('\n')
	}
	text := all.String()
	var keys []string
	s.walkKeys(top, "", 0, func(key, leaf string) {
		keys = append(keys, key)
		if strings.Contains(text, "`"+key) {
			return
		}
		if !regexp.MustCompile(`\b` + regexp.QuoteMeta(leaf) + `\b`).MatchString(text) {
			t.Errorf("config key %s (deploy/warden.schema.json) is not named in README.md, docs/*.md or deploy/README.md", key)
		}
	})
	if len(keys) < 100 {
		t.Errorf("only %d keys walked in the schema: is the walk still following $ref?", len(keys))
	}
}

// walkKeys calls fn for every property path under n (maps and arrays
// stepped into as NAME and []).
func (s *schema) walkKeys(n *schemaNode, prefix string, depth int, fn func(key, leaf string)) {
	n = s.resolve(n)
	if n == nil || depth > 10 {
		return
	}
	if n.Items != nil {
		s.walkKeys(n.Items, prefix+"[]", depth+1, fn)
		return
	}
	if v := s.mapValue(n); v != nil {
		s.walkKeys(v, prefix+".NAME", depth+1, fn)
		return
	}
	props := make([]string, 0, len(n.Properties))
	for k := range n.Properties {
		props = append(props, k)
	}
	sort.Strings(props)
	for _, k := range props {
		key := k
		if prefix != "" {
			key = prefix + "." + k
		}
		fn(key, k)
		s.walkKeys(n.Properties[k], key, depth+1, fn)
	}
}

// yamlBlockRe is a fenced YAML example: a piece of a Warden config file.
var yamlBlockRe = regexp.MustCompile("(?ms)^```ya?ml\\n(.*?)^```")

// TestYAMLExamplesInSchema: every key of every YAML example in the docs is
// in the schema, at the place the example puts it.
func TestYAMLExamplesInSchema(t *testing.T) {
	root := repoRoot(t)
	s, top := loadSchema(t, root)
	blocks := 0
	for _, file := range docFiles(t, root) {
		b, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(file)))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range yamlBlockRe.FindAllStringSubmatchIndex(string(b), -1) {
			line := 1 + strings.Count(string(b[:m[2]]), "\n")
			var v any
			if err := yaml.Unmarshal(b[m[2]:m[3]], &v); err != nil {
				t.Errorf("%s:%d: YAML example: %v", file, line, err)
				continue
			}
			blocks++
			for _, bad := range s.unknownKeys(top, v, "") {
				t.Errorf("%s:%d: YAML example: %s is not in deploy/warden.schema.json", file, line, bad)
			}
		}
	}
	if blocks == 0 {
		t.Error("no YAML examples found in the docs: is the fence pattern still matching?")
	}
}

func (s *schema) unknownKeys(n *schemaNode, v any, prefix string) []string {
	n = s.resolve(n)
	if n == nil {
		return nil
	}
	var bad []string
	switch v := v.(type) {
	case map[string]any:
		mv := s.mapValue(n)
		for k, x := range v {
			key := k
			if prefix != "" {
				key = prefix + "." + k
			}
			switch child, ok := n.Properties[k]; {
			case mv != nil:
				bad = append(bad, s.unknownKeys(mv, x, key)...)
			case !ok:
				bad = append(bad, key)
			default:
				bad = append(bad, s.unknownKeys(child, x, key)...)
			}
		}
	case []any:
		if n.Items != nil {
			for _, x := range v {
				bad = append(bad, s.unknownKeys(n.Items, x, prefix+"[]")...)
			}
		}
	}
	sort.Strings(bad)
	return bad
}
