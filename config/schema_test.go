package config

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"gopkg.in/yaml.v3"
)

var updateSchema = flag.Bool("update", false, "rewrite ../deploy/warden.schema.json from the Go types")

var schemaFile = filepath.Join("..", "deploy", "warden.schema.json")

// The committed schema is the generated one: change a config type, run
// go test ./config -run TestSchemaUpToDate -update, commit the file.
func TestSchemaUpToDate(t *testing.T) {
	got := JSONSchema()
	if *updateSchema {
		if err := os.WriteFile(schemaFile, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(schemaFile)
	if err != nil {
		t.Fatalf("%v (run go test ./config -run TestSchemaUpToDate -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is out of date with the config types: run go test ./config -run TestSchemaUpToDate -update and commit it", schemaFile)
	}
}

// Every key a real config uses is in the schema where the file uses it,
// and unknown keys are not allowed.
func TestSchemaCoversConfig(t *testing.T) {
	var s struct {
		Ref  string                    `json:"$ref"`
		Defs map[string]map[string]any `json:"$defs"`
	}
	if err := json.Unmarshal(JSONSchema(), &s); err != nil {
		t.Fatal(err)
	}
	resolve := func(n map[string]any) map[string]any {
		if ref, ok := n["$ref"].(string); ok {
			return s.Defs[filepath.Base(ref)]
		}
		return n
	}
	var walk func(path string, node *yaml.Node, sch map[string]any)
	walk = func(path string, node *yaml.Node, sch map[string]any) {
		sch = resolve(sch)
		switch node.Kind {
		case yaml.MappingNode:
			props, isStruct := sch["properties"].(map[string]any)
			for i := 0; i+1 < len(node.Content); i += 2 {
				k := node.Content[i].Value
				var sub map[string]any
				if isStruct {
					p, ok := props[k].(map[string]any)
					if !ok {
						t.Errorf("%s.%s: not in the schema", path, k)
						continue
					}
					sub = p
				} else if ap, ok := sch["additionalProperties"].(map[string]any); ok {
					sub = ap
				} else {
					t.Errorf("%s: schema %v is not an object", path, sch)
					continue
				}
				walk(path+"."+k, node.Content[i+1], sub)
			}
		case yaml.SequenceNode:
			items, ok := sch["items"].(map[string]any)
			if !ok {
				t.Errorf("%s: schema is not an array", path)
				return
			}
			for _, c := range node.Content {
				walk(path+"[]", c, items)
			}
		}
	}
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(schemaSample), &doc); err != nil {
		t.Fatal(err)
	}
	if _, err := ParseConfig([]byte(schemaSample)); err != nil {
		t.Fatalf("sample: %v", err)
	}
	walk("", doc.Content[0], map[string]any{"$ref": s.Ref})
	cfg := s.Defs["Config"]
	if cfg["additionalProperties"] != false || !reflect.DeepEqual(cfg["required"], []any{"version"}) {
		t.Errorf("Config schema: %v", cfg)
	}
}

const schemaSample = `
version: 1
listen: {endpoint: "127.0.0.1:8480", admin: "127.0.0.1:9090"}
upstream: {region: us-east-1, signing: resign}
limits: {max_body_bytes: 1000000}
models: {cache_ttl: 5m}
identity:
  sources: [static]
  static: {app: chatbot}
audit:
  sinks: [{stdout: {}}, {file: {path: /tmp/a.jsonl}}]
apps:
  - name: chatbot
    mode: dry-run
    allow_weak_identity: true
    match: {tags: {app: chatbot}, in: {env: [prod]}, exists: [team], glob: {pod: "chat-*"}}
    allow:
      models: ["amazon.nova-*"]
      operations: [Converse]
      regions: [us-east-1]
      profile_scopes: [us]
`
