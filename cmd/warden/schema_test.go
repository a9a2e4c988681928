package main

import (
	"bytes"
	"context"
	"os"
	"testing"
)

// `warden policy schema` prints the committed schema (which authz's
// TestSchemaUpToDate keeps equal to the generated one).
func TestPolicySchema(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"policy", "schema"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	want, err := os.ReadFile("../../deploy/warden.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(stdout.Bytes(), want) {
		t.Error("warden policy schema differs from deploy/warden.schema.json")
	}
	if code := run(context.Background(), []string{"policy", "schema", "extra"}, &stdout, &stderr); code == 0 {
		t.Error("extra arguments accepted")
	}
}
