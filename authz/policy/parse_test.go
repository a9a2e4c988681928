package policy

import (
	"bytes"
	"errors"
	"io"

	"gopkg.in/yaml.v3"
)

// policyFile is the policy's part of a Warden config file.
type policyFile struct {
	Apps   []AppConfig
	Deny   []DenyConfig
	Mode   string
	limits struct {
		MaxBodyBytes int64 `yaml:"max_body_bytes"`
	}
	upstream struct {
		Region string `yaml:"region"`
	}
}

func (f *policyFile) Policy() Config {
	return Config{Apps: f.Apps, Deny: f.Deny, Mode: f.Mode, MaxBodyBytes: f.limits.MaxBodyBytes, Region: f.upstream.Region}
}

// parsePolicy reads a whole config file's policy keys (apps, deny, mode) as
// the loader (package config) does: strictly decoded, with each app's line,
// validated. The loader's checks of the other sections, of references
// between sections and of the file's shape are tested there.
func parsePolicy(data []byte) (*policyFile, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, err
	}
	var file map[string]yaml.Node
	if err := root.Decode(&file); err != nil {
		return nil, err
	}
	var f policyFile
	for key, dst := range map[string]any{"apps": &f.Apps, "deny": &f.Deny, "mode": &f.Mode, "limits": &f.limits, "upstream": &f.upstream} {
		n, ok := file[key]
		if !ok {
			continue
		}
		section, err := yaml.Marshal(&n)
		if err != nil {
			return nil, err
		}
		dec := yaml.NewDecoder(bytes.NewReader(section))
		dec.KnownFields(key != "limits" && key != "upstream")
		if err := dec.Decode(dst); err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
	}
	RecordLines(&root, f.Apps, f.Deny)
	pc := f.Policy()
	if errs := pc.Validate(); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return &f, nil
}

// warnings are the policy's warnings in the loader's order (apps, then
// globals; the loader puts identity's between them).
func warnings(f *policyFile) []string {
	pc := f.Policy()
	return append(AppWarnings(&pc), GlobalWarnings(&pc)...)
}
