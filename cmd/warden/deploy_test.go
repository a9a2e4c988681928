package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/warden-egress/warden/config"
)

// TestDeployExamplesParse keeps the Warden configs embedded in the
// Kubernetes examples valid: every ConfigMap key named warden.yaml must
// parse and validate.
func TestDeployExamplesParse(t *testing.T) {
	files, err := filepath.Glob("../../deploy/kubernetes/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no Kubernetes examples found: %v", err)
	}
	found := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		for {
			var doc struct {
				Kind     string            `yaml:"kind"`
				Metadata map[string]any    `yaml:"metadata"`
				Data     map[string]string `yaml:"data"`
			}
			if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if doc.Kind != "ConfigMap" {
				continue
			}
			for k, v := range doc.Data {
				if !strings.HasSuffix(k, "warden.yaml") {
					continue
				}
				found++
				if _, err := config.ParseConfig([]byte(v)); err != nil {
					t.Errorf("%s: ConfigMap %v key %s: %v", f, doc.Metadata["name"], k, err)
				}
			}
		}
	}
	if found < 3 {
		t.Errorf("found %d embedded configs, want at least 3 (sidecar source, sidecar copy, transparent)", found)
	}
}
