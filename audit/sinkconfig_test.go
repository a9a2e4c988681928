package audit

import (
	"context"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestEverySinkKindWired: each sink field of SinkConfig (ARCHITECTURE.md,
// "Adding an audit sink") is named by Kind under its yaml key, counted by
// validateSinks' "exactly one sink" check and opened by openSink, so a sink
// added to SinkConfig but missing from one of the three fails here rather
// than in a deployment.
func TestEverySinkKindWired(t *testing.T) {
	st := reflect.TypeFor[SinkConfig]()
	n := 0
	for i := range st.NumField() {
		f := st.Field(i)
		if f.Type.Kind() != reflect.Pointer {
			continue
		}
		n++
		key, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		t.Run(key, func(t *testing.T) {
			var sc SinkConfig
			reflect.ValueOf(&sc).Elem().Field(i).Set(reflect.New(f.Type.Elem()))
			if got := sc.Kind(); got != key {
				t.Errorf("Kind() = %q, want %q", got, key)
			}
			for _, err := range validateSinks("audit.sinks", []SinkConfig{sc}) {
				if strings.Contains(err.Error(), "exactly one sink") {
					t.Errorf("validateSinks does not count %s: %v", key, err)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			s, err := openSink(ctx, sc, "test", io.Discard)
			if err != nil && strings.Contains(err.Error(), "no sink named") {
				t.Errorf("openSink does not open %s", key)
			}
			if s != nil {
				_ = s.Close()
			}
		})
	}
	if n < 5 {
		t.Fatalf("found %d sink fields in SinkConfig; the reflection walk is broken", n)
	}
}
