package config

import (
	"bytes"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// ConfigError is every problem ParseConfig found in one pass: unknown keys
// and values of the wrong kind (named by config key, never by Go type), then
// the validation problems, each with the place in the file it is about.
type ConfigError struct {
	Problems []ConfigProblem
}

// ConfigProblem is one problem; Line and Column are 1-based, 0 when the
// problem has no single place in the file.
type ConfigProblem struct {
	Line, Column int
	Msg          string
	// lineInText keeps Error() as it always was: decode problems and the
	// per-app/deny problems carried "line N: " in their text, others none.
	lineInText bool
}

func (e *ConfigError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.Msg
		if p.lineInText && p.Line > 0 {
			lines[i] = fmt.Sprintf("line %d: %s", p.Line, p.Msg)
		}
	}
	return strings.Join(lines, "\n")
}

// diagnostics renders the problems as "file:line:column: message".
func (e *ConfigError) diagnostics(file string) []string {
	out := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		switch {
		case p.Line > 0 && p.Column > 0:
			out[i] = fmt.Sprintf("%s:%d:%d: %s", file, p.Line, p.Column, p.Msg)
		case p.Line > 0:
			out[i] = fmt.Sprintf("%s:%d: %s", file, p.Line, p.Msg)
		default:
			out[i] = file + ": " + p.Msg
		}
	}
	return out
}

// DecodeStrict decodes one YAML document into v (a pointer to a struct)
// the way ParseConfig decodes the config: unknown keys and values of the
// wrong kind are a *ConfigError naming the key path, not a Go type.
func DecodeStrict(data []byte, v any) error {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return err
	}
	if root.Kind == 0 {
		return nil // empty: v keeps its zero value
	}
	shape := &shapeChecker{}
	shape.check(&root, reflect.TypeOf(v).Elem(), "")
	if len(shape.problems) > 0 {
		return &ConfigError{Problems: shape.problems}
	}
	return root.Decode(v)
}

// shapeChecker walks the YAML tree beside the Go type it decodes into, the
// way the decoder will, and reports what the decoder would refuse in terms
// of config keys.
type shapeChecker struct {
	problems []ConfigProblem
	// badValue says a value could not be decoded; badPaths are the key
	// paths of those values ("" for the whole file). Validation still runs
	// on the rest of the file (every problem in one pass), but its problems
	// about a value that did not decode are dropped: they would only repeat
	// the decode problem in other words (see dropBadPaths).
	badValue bool
	badPaths []string
}

// bad records that the value at path could not be decoded.
func (c *shapeChecker) bad(path string) {
	c.badValue = true
	c.badPaths = append(c.badPaths, path)
}

func (c *shapeChecker) add(n *yaml.Node, format string, args ...any) {
	c.problems = append(c.problems, ConfigProblem{Line: n.Line, Column: n.Column, Msg: fmt.Sprintf(format, args...), lineInText: true})
}

func (c *shapeChecker) check(n *yaml.Node, t reflect.Type, path string) {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) > 0 {
			c.check(n.Content[0], t, path)
		}
		return
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // an empty value leaves the zero value
	}
	switch {
	case t == durationType || (t.Kind() != reflect.Struct && t.Kind() != reflect.Map && t.Kind() != reflect.Slice && t.Kind() != reflect.Interface):
		if n.Kind != yaml.ScalarNode {
			c.bad(path)
			c.add(n, "%s: want %s, got %s", path, valueKindName(t), nodeKindName(n))
			return
		}
		if err := n.Decode(reflect.New(t).Interface()); err != nil {
			c.bad(path)
			c.add(n, "%s: `%s` is not %s", path, n.Value, valueKindName(t))
		}
	case t.Kind() == reflect.Interface:
	case t.Kind() == reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			c.bad(path)
			c.add(n, "%s: want %s, got %s", path, valueKindName(t), nodeKindName(n))
			return
		}
		for i, item := range n.Content {
			c.check(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i))
		}
	case t.Kind() == reflect.Map:
		if n.Kind != yaml.MappingNode {
			c.bad(path)
			c.add(n, "%s: want %s, got %s", path, valueKindName(t), nodeKindName(n))
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			c.check(n.Content[i], t.Key(), join(path, n.Content[i].Value))
			c.check(n.Content[i+1], t.Elem(), join(path, n.Content[i].Value))
		}
	case t.Kind() == reflect.Struct:
		if n.Kind != yaml.MappingNode {
			c.bad(path)
			c.add(n, "%s: want %s, got %s", orRoot(path), valueKindName(t), nodeKindName(n))
			return
		}
		fields := yamlFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Tag == "!!merge" { // "<<: *defaults" merges keys into this mapping
				c.check(v, t, path)
				continue
			}
			f, ok := fields[k.Value]
			if !ok {
				known := make([]string, 0, len(fields))
				for name := range fields {
					known = append(known, name)
				}
				slices.Sort(known)
				c.add(k, "%s: unknown key (known: %s)", join(path, k.Value), strings.Join(known, ", "))
				continue
			}
			c.check(v, f, join(path, k.Value))
		}
	}
}

// yamlFields maps a struct's keys (inline structs included) to field types.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		if strings.Contains(f.Tag.Get("yaml"), ",inline") {
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			for k, v := range yamlFields(ft) {
				out[k] = v
			}
			continue
		}
		if name := yamlName(f); name != "" {
			out[name] = f.Type
		}
	}
	return out
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func orRoot(path string) string {
	if path == "" {
		return "the file"
	}
	return path
}

// kindName says what a config value must be, in YAML terms.
func valueKindName(t reflect.Type) string {
	if t == durationType {
		return "a duration (e.g. 30s, 5m, 1h30m)"
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a non-negative integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Bool:
		return "true or false"
	case reflect.String:
		return "a string"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Map, reflect.Struct:
		return "a mapping"
	}
	return "a value"
}

func nodeKindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	return "`" + n.Value + "`"
}

var (
	// rePathHead is the key path a validation message starts with:
	// "audit.sinks[0].s3.bucket is required", `identity.sources: "x": …`.
	rePathHead = regexp.MustCompile(`^([A-Za-z_][\w-]*(?:\[[^\]]*\])*(?:\.[\w*-]+(?:\[[^\]]*\])*)*)(?:[: ]|$)`)
	reQuoted   = regexp.MustCompile(`^"((?:[^"\\]|\\.)*)"`)
)

// positionProblems turns validation messages into problems with the
// position of the key they name. A message that names no key keeps no
// position; "line N: apps[i] …" keeps the app's position as it always had.
func positionProblems(root *yaml.Node, err error) []ConfigProblem {
	var doc *yaml.Node
	if root != nil && len(root.Content) > 0 && root.Content[0].Kind == yaml.MappingNode {
		doc = root.Content[0]
	}
	var out []ConfigProblem
	for _, msg := range strings.Split(err.Error(), "\n") {
		msg = strings.TrimSpace(msg)
		if msg == "" || msg == "yaml: unmarshal errors:" {
			continue
		}
		p := ConfigProblem{Msg: msg}
		if m := reLine.FindStringSubmatch(msg); m != nil {
			p.Line, _ = strconv.Atoi(m[1])
			p.Msg, p.lineInText = m[2], true
			if root != nil && root.Kind != 0 {
				p.Column = columnFor(root, p.Line, p.Msg)
			}
		} else if doc != nil {
			if n := nodeForMessage(doc, msg); n != nil {
				p.Line, p.Column = n.Line, n.Column
			}
		}
		out = append(out, p)
	}
	return out
}

// nodeForMessage finds the node a message's leading key path names: the
// deepest key of the path that is in the file (so "…s3.bucket is required"
// points at s3), then a quoted value the message goes on to name inside it
// (`identity.sources: "statik": …` points at the statik item). A path whose
// first key is not top-level ("token.audience …") is looked for anywhere,
// and used if it is found once.
func nodeForMessage(doc *yaml.Node, msg string) *yaml.Node {
	m := rePathHead.FindStringSubmatch(msg)
	if m == nil {
		return nil
	}
	segs := splitPath(m[1])
	if len(segs) == 0 {
		return nil
	}
	var key, val *yaml.Node
	if _, isTop := yamlFields(reflect.TypeFor[Config]())[segs[0]]; isTop {
		key, val, _ = resolve(doc, segs)
		if key == nil {
			return doc // a missing top-level key: the file as a whole
		}
	} else {
		var found [][2]*yaml.Node
		walkMappings(doc, func(n *yaml.Node) {
			if k, v, full := resolve(n, segs); full {
				found = append(found, [2]*yaml.Node{k, v})
			}
		})
		if len(found) != 1 {
			return nil
		}
		key, val = found[0][0], found[0][1]
	}
	rest := strings.TrimPrefix(strings.TrimPrefix(msg[len(m[1]):], ":"), " ")
	if q := reQuoted.FindStringSubmatch(rest); q != nil && val != nil {
		want, err := strconv.Unquote(`"` + q[1] + `"`)
		if err == nil {
			switch val.Kind {
			case yaml.SequenceNode:
				for _, item := range val.Content {
					if item.Kind == yaml.ScalarNode && item.Value == want {
						return item
					}
				}
			case yaml.MappingNode:
				for i := 0; i+1 < len(val.Content); i += 2 {
					if val.Content[i].Value == want {
						return val.Content[i]
					}
				}
			}
		}
	}
	return key
}

// splitPath splits "a.b[0].c" into a, b, [0], c; a bracketed non-number is
// a map key ("audit.prices[anthropic.*]").
func splitPath(p string) []string {
	var out []string
	for p != "" {
		switch {
		case p[0] == '.':
			p = p[1:]
		case p[0] == '[':
			end := strings.IndexByte(p, ']')
			if end < 0 {
				return out
			}
			out = append(out, p[:end+1])
			p = p[end+1:]
		default:
			end := strings.IndexAny(p, ".[")
			if end < 0 {
				end = len(p)
			}
			out = append(out, p[:end])
			p = p[end:]
		}
	}
	return out
}

// resolve follows segs from a mapping as far as the file goes and returns
// the last node found (a key, or a list item), its value, and whether the
// whole path was found.
func resolve(n *yaml.Node, segs []string) (key, val *yaml.Node, full bool) {
	cur := n
	for _, s := range segs {
		for cur.Kind == yaml.AliasNode && cur.Alias != nil {
			cur = cur.Alias
		}
		var k, v *yaml.Node
		if strings.HasPrefix(s, "[") {
			inner := strings.Trim(s[1:len(s)-1], `"`)
			if idx, err := strconv.Atoi(inner); err == nil && cur.Kind == yaml.SequenceNode {
				if idx >= 0 && idx < len(cur.Content) {
					k, v = cur.Content[idx], cur.Content[idx]
				}
			} else {
				k, v = mappingEntry(cur, inner)
			}
		} else {
			k, v = mappingEntry(cur, s)
		}
		if k == nil {
			return key, val, false
		}
		key, val, cur = k, v, v
	}
	return key, val, true
}

func mappingEntry(m *yaml.Node, name string) (key, val *yaml.Node) {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil, nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == name {
			return m.Content[i], m.Content[i+1]
		}
	}
	return nil, nil
}

func walkMappings(n *yaml.Node, f func(*yaml.Node)) {
	if n.Kind == yaml.MappingNode {
		f(n)
	}
	for _, c := range n.Content {
		walkMappings(c, f)
	}
}

// appWhereRe is how per-app and per-deny-rule problems name their entry:
// "apps[2] (payments): allow.models: …".
var appWhereRe = regexp.MustCompile(`^((?:apps|deny)\[\d+\]) \([^)]*\): `)

// dropBadPaths drops the validation problems about a value that could not
// be decoded (one that names its key path, or a key above or below it):
// the decoder left that value empty, so validation would report it again
// as missing or wrong.
func dropBadPaths(problems []ConfigProblem, badPaths []string) []ConfigProblem {
	if len(badPaths) == 0 {
		return problems
	}
	var out []ConfigProblem
	for _, p := range problems {
		msg := appWhereRe.ReplaceAllString(p.Msg, "$1.")
		if !mentionsPath(msg, badPaths) && !aboveBadPath(msg, badPaths) && !namesAppBadKey(p.Msg, badPaths) {
			out = append(out, p)
		}
	}
	return out
}

// aboveBadPath says whether msg is about a key above one of paths (its
// leading key path is an ancestor of it): "apps[0].match must select a tag"
// when apps[0].match.tags.app did not decode is about the hole the decoder
// left, not about the file.
// namesAppBadKey reports whether an app's or deny rule's own problem
// ("apps[0] (a): … or set allow_weak_identity: true") names one of its keys
// that did not decode: the problem follows from that key's value being left
// empty ("apps[0].allow_weak_identity: `yes-please` is not true or false").
func namesAppBadKey(msg string, paths []string) bool {
	m := appWhereRe.FindStringSubmatch(msg)
	if m == nil {
		return false
	}
	text := msg[len(m[0]):]
	for _, path := range paths {
		key, ok := strings.CutPrefix(path, m[1]+".")
		if !ok || key == "" {
			continue
		}
		for i := strings.Index(text, key); i >= 0; {
			end := i + len(key)
			before := i == 0 || strings.ContainsRune(" ,(", rune(text[i-1]))
			after := end == len(text) || strings.ContainsRune(":,)", rune(text[end]))
			if before && after {
				return true
			}
			j := strings.Index(text[end:], key)
			if j < 0 {
				break
			}
			i = end + j
		}
	}
	return false
}

func aboveBadPath(msg string, paths []string) bool {
	lead := msg
	if i := strings.IndexAny(lead, " :"); i >= 0 {
		lead = lead[:i]
	}
	if lead == "" {
		return false
	}
	for _, path := range paths {
		if rest, ok := strings.CutPrefix(path, lead); ok && rest != "" && (rest[0] == '.' || rest[0] == '[') {
			return true
		}
	}
	return false
}

// mentionsPath says whether msg names one of paths, or a key under one,
// as a whole key path (not "listen.admin" for "listen.ad").
func mentionsPath(msg string, paths []string) bool {
	for _, path := range paths {
		for i := 0; ; {
			j := strings.Index(msg[i:], path)
			if j < 0 {
				break
			}
			j += i
			end := j + len(path)
			before := j == 0 || strings.ContainsRune(" \t\"'`(", rune(msg[j-1]))
			after := end == len(msg) || strings.ContainsRune(" .[:,)\"'`", rune(msg[end]))
			if before && after {
				return true
			}
			i = j + 1
		}
	}
	return false
}

// yamlParserProblems are the problems yaml.v3's parser (not its scanner)
// reports. For these it prints a 0-based line, for the scanner's a 1-based
// one, and for a problem on the first line none at all (see yaml.v3's
// parser.fail); syntaxError undoes that.
var yamlParserProblems = []string{
	"did not find expected ',' or ']'", "did not find expected ',' or '}'", "did not find expected '-' indicator",
	"did not find expected <document start>", "did not find expected <stream-start>", "did not find expected key",
	"did not find expected node content", "found duplicate %TAG directive", "found duplicate %YAML directive",
	"found incompatible YAML document", "found undefined tag handle",
}

var reYAMLSyntax = regexp.MustCompile(`^yaml: (?:line (\d+): )?(.*)$`)

// syntaxError turns a YAML syntax error into a *ConfigError with the
// 1-based line of the problem (the last line when the problem is the end
// of the file). yaml.v3 does not say the column.
func syntaxError(data []byte, err error) error {
	m := reYAMLSyntax.FindStringSubmatch(err.Error())
	if m == nil {
		return err
	}
	line, msg := 1, m[2]
	if m[1] != "" {
		line, _ = strconv.Atoi(m[1])
		if slices.Contains(yamlParserProblems, msg) {
			line++
		}
	}
	if last := bytes.Count(bytes.TrimRight(data, "\n"), []byte("\n")) + 1; line > last {
		line = last
	}
	return &ConfigError{Problems: []ConfigProblem{{Line: line, Msg: msg, lineInText: true}}}
}
