package identity

import (
	"bytes"
	"errors"
	"io"

	"gopkg.in/yaml.v3"
)

// identityFile is the identity section of a Warden config file.
type identityFile struct {
	Identity Config `yaml:"identity"`
}

// parseIdentity reads a whole config file's identity section as the loader
// (package config) does: decoded, defaulted, validated. The loader's own
// checks of the other sections and of the file's shape are tested there.
func parseIdentity(data []byte) (*identityFile, error) {
	var file struct {
		Identity yaml.Node `yaml:"identity"`
	}
	if err := yaml.Unmarshal(data, &file); err != nil {
		return nil, err
	}
	// The identity section strictly, as the loader reads it: an unknown key
	// is an error.
	section, err := yaml.Marshal(&file.Identity)
	if err != nil {
		return nil, err
	}
	var f identityFile
	dec := yaml.NewDecoder(bytes.NewReader(section))
	dec.KnownFields(true)
	if err := dec.Decode(&f.Identity); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	f.Identity.ApplyDefaults()
	if errs := f.Identity.Validate(); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return &f, nil
}

// minimal is the smallest valid config file (static identity).
const minimal = `
version: 1
listen: {endpoint: 127.0.0.1:8480}
upstream: {region: us-east-1}
identity: {sources: [static], static: {app: a}}
apps:
  - name: a
    allow_weak_identity: true   # static sidecar tags are weak
    match: {tags: {app: a}}
    allow: {models: ["*"], operations: [Converse]}
`
