package bundle

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// FuzzVerify feeds arbitrary bytes to the parser and verifier: no panic,
// and nothing but a bundle signed by the trusted key is ever accepted.
func FuzzVerify(f *testing.F) {
	s, pub := testKey(7, "k")
	trust := Trust{"k": pub}
	good, err := Sign(Envelope{Serial: 3, IssuedAt: t0, ExpiresAt: t0.Add(time.Hour), Scope: Scope{Fleets: []string{"*"}}, Policy: testPolicy}, s)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	seeds, _ := filepath.Glob(filepath.Join("testdata", "seed", "*"))
	for _, p := range seeds {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(`{"envelope":"e30=","signatures":[{"key_id":"k","sig":"AAAA"}]}`))
	f.Add([]byte(`{"envelope":"!!","signatures":null}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		_, _, _, _ = Parse(raw)
		v, err := Verify(raw, Policy{Trust: trust, Target: Target{Fleet: "f", Namespace: "n"}, Now: t0.Add(time.Minute)})
		if err != nil {
			if v != nil {
				t.Fatal("a refused bundle was returned")
			}
			return
		}
		// Accepted: it must really be signed by k over its envelope.
		if v.KeyID != "k" || v.Serial == 0 || v.Policy == "" {
			t.Fatalf("accepted %+v", v)
		}
	})
}
