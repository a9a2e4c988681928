package identity

import (
	"slices"
	"testing"
)

// WeakTagNames agrees whether computed per call or precomputed by a source.
func TestWeakTagNamesPrecomputed(t *testing.T) {
	id := Identity{Source: "x", Tags: map[string]Tag{"b": WeakTag("x", "1"), "a": WeakTag("x", "2"), "k8s.namespace": StrongTag("x", "ns")}}
	want := []string{"a", "b"}
	if got := id.WeakTagNames(); !slices.Equal(got, want) {
		t.Fatalf("computed %v, want %v", got, want)
	}
	id.precompute()
	if got := id.WeakTagNames(); !slices.Equal(got, want) {
		t.Fatalf("precomputed %v, want %v", got, want)
	}
	if got := id.WithTag("c", WeakTag("x", "3")).WeakTagNames(); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("after WithTag %v", got)
	}
	if got := NewStaticSource(map[string]string{"app": "a"}).id.WeakTagNames(); !slices.Equal(got, []string{"app"}) {
		t.Fatalf("static source %v", got)
	}
}
