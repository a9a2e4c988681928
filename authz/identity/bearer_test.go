package identity

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

func bearerConn(headers map[string][]string) *Conn {
	r, _ := http.NewRequest("POST", "http://127.0.0.1:8480/openai/v1/chat/completions", strings.NewReader(`{}`))
	for k, vs := range headers {
		for _, v := range vs {
			r.Header.Add(k, v)
		}
	}
	return &Conn{Request: r, Body: []byte(`{}`)}
}

// A bearer key names its app like the SigV4 key it derives from, in either
// header the SDKs use; editing, another master key, expiry, revocation and
// a second credential each deny it.
func TestKeysSourceBearer(t *testing.T) {
	f := newKeysFixture(t)
	akid, secret := f.issue(t, "payments", time.Hour)
	key := BearerKeyFor(f.master, akid)
	if strings.Contains(key, secret) || len(key) != len(akid)+1+bearerMACLen {
		t.Fatalf("bearer key %q holds the SigV4 secret or has the wrong length", key)
	}
	expired, _ := f.issue(t, "payments", -time.Minute)
	revoked, _ := f.issue(t, "payments", time.Hour)
	otherMaster := newKeysFixture(t)
	foreign, _ := otherMaster.issue(t, "payments", time.Hour)
	s := f.source(t, KeysConfig{Revoked: []string{revoked}, Hosts: []string{"warden.internal:8443"}})

	for _, h := range []map[string][]string{
		{"Authorization": {"Bearer " + key}},
		{"Authorization": {"bearer " + key}},
		{"X-Api-Key": {key}},
	} {
		c := bearerConn(h)
		if !s.Presents(c) {
			t.Fatalf("%v: not presented", h)
		}
		id, err := s.Resolve(context.Background(), c)
		if err != nil {
			t.Fatalf("%v: %v", h, err)
		}
		if v := id.TagValues()[TagWardenKeyApp]; v != "payments" || id.Source != SourceKeys {
			t.Fatalf("%v: identity %+v", h, id)
		}
		if v := id.TagValues()[TagWardenKeyID]; v != akid {
			t.Fatalf("%v: key id %q", h, v)
		}
	}

	// An app edited into the key id changes the MAC it needs.
	otherApp, _ := f.issue(t, "billing", time.Hour)
	_, mac, _ := strings.Cut(key, ".")
	// The edit must change the key whatever its last character is: a fixed
	// replacement letter is a no-op when the MAC already ends in it.
	edited := key[:len(key)-1] + "A"
	if edited == key {
		edited = key[:len(key)-1] + "B"
	}
	tests := []struct {
		name    string
		headers map[string][]string
		want    error
		says    string
	}{
		{"edited app", map[string][]string{"Authorization": {"Bearer " + otherApp + "." + mac}}, ErrKeySignature, otherApp},
		{"edited mac", map[string][]string{"X-Api-Key": {edited}}, ErrKeySignature, ""},
		{"another master", map[string][]string{"X-Api-Key": {BearerKeyFor(otherMaster.master, foreign)}}, ErrKeySignature, foreign},
		{"expired", map[string][]string{"X-Api-Key": {BearerKeyFor(f.master, expired)}}, ErrKeyExpired, expired},
		{"revoked", map[string][]string{"X-Api-Key": {BearerKeyFor(f.master, revoked)}}, ErrKeyRevoked, revoked},
		{"SigV4 secret as the MAC", map[string][]string{"X-Api-Key": {akid + "." + secret}}, ErrKeyMalformed, ""},
		{"key id alone", map[string][]string{"X-Api-Key": {akid}}, ErrKeyMalformed, ""},
		{"two keys", map[string][]string{"X-Api-Key": {key}, "Authorization": {"Bearer " + key}}, nil, "more than one credential"},
		{"beside a signature", map[string][]string{"X-Api-Key": {key}, "Authorization": {"AWS4-HMAC-SHA256 Credential=" + akid + "/20260601/us-east-1/bedrock/aws4_request, SignedHeaders=host, Signature=00"}}, nil, "more than one credential"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := bearerConn(tt.headers)
			if !s.Presents(c) {
				t.Fatal("not presented: another source would decide")
			}
			id, err := s.Resolve(context.Background(), c)
			if err == nil {
				t.Fatalf("accepted as %+v", id)
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("error %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.says) {
				t.Errorf("error %v does not say %q", err, tt.says)
			}
			if strings.Contains(err.Error(), mac) {
				t.Errorf("error %v repeats the MAC", err)
			}
		})
	}
}

func TestPresentsBedrockAPIKey(t *testing.T) {
	for _, tc := range []struct {
		h    map[string][]string
		want bool
	}{
		{map[string][]string{"Authorization": {"Bearer ABSKQmVkcm9ja0FQSUtleS1leGFtcGxl"}}, true},
		{map[string][]string{"Authorization": {"Bearer bedrock-api-key-YmVkcm9jay5hbWF6b25hd3MuY29t"}}, true},
		{map[string][]string{"X-Api-Key": {"ABSKxyz"}}, true},
		{map[string][]string{"X-Api-Key": {"WDN1ABC.def"}, "Authorization": {"Bearer ABSKxyz"}}, true},
		{map[string][]string{"Authorization": {"Bearer WDN1ABC.def"}}, false},
		{map[string][]string{"Authorization": {"AWS4-HMAC-SHA256 Credential=ABSK/20260601/us-east-1/bedrock/aws4_request"}}, false},
		{map[string][]string{"Authorization": {"Bearer sk-proj-abc"}}, false},
		{nil, false},
	} {
		if got := PresentsBedrockAPIKey(bearerConn(tc.h).Request); got != tc.want {
			t.Errorf("%v: %v, want %v", tc.h, got, tc.want)
		}
	}
}

func FuzzBearerKey(f *testing.F) {
	fx := &keysFixture{master: []byte(strings.Repeat("k", 32)), now: time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)}
	akid, _, _ := IssueKey(fx.master, "payments", fx.now.Add(time.Hour), strings.NewReader(strings.Repeat("n", 16)))
	f.Add(BearerKeyFor(fx.master, akid))
	f.Add(akid + ".")
	f.Add("WDN1.x")
	f.Add("ABSKxyz")
	f.Fuzz(func(t *testing.T, tok string) {
		a, mac, ok := splitBearerKey(tok)
		if !ok {
			return
		}
		if a+"."+mac != tok || !IsWardenKeyID(a) || len(mac) != bearerMACLen {
			t.Fatalf("split %q into %q, %q", tok, a, mac)
		}
		// Only the derived MAC of a well-formed id verifies.
		if checkBearerMAC(fx.master, a, mac) && BearerKeyFor(fx.master, a) != tok {
			t.Fatalf("%q verifies but is not the derived key", tok)
		}
	})
}
