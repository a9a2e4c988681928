package identity

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strings"
)

// Bearer keys are a Warden-issued key in the API-key form the OpenAI and
// Anthropic SDKs send (Authorization: Bearer KEY, or x-api-key: KEY), for
// apps that cannot sign with SigV4:
//
//	KEYID "." base64url(HMAC-SHA256(master, "warden bearer key\x00" ‖ KEYID))   (no padding: 43 characters)
//
// KEYID is an access key id IssueKey made, so a bearer key carries the same
// app and expiry and is revoked by the same id. The MAC is not the SigV4
// secret of KEYID: a bearer key that leaks (it travels whole on every
// request, unlike a signature) does not give away the secret, nor the
// secret the bearer key. Like a SigV4 key it is derived, never stored.

// bearerDomain separates bearer MACs from SigV4 secrets under one master key.
const bearerDomain = "warden bearer key\x00"

// bearerMACLen is the length of the encoded MAC.
const bearerMACLen = 43

// BearerKeyFor returns the bearer form of a Warden-issued access key id. It
// does not check akid (IssueKey made it).
func BearerKeyFor(master []byte, akid string) string {
	return akid + "." + bearerMAC(master, akid)
}

func bearerMAC(master []byte, akid string) string {
	m := hmac.New(sha256.New, master)
	m.Write([]byte(bearerDomain))
	m.Write([]byte(akid))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// splitBearerKey splits a presented bearer key into its key id and MAC,
// checking the form only.
func splitBearerKey(tok string) (akid, mac string, ok bool) {
	akid, mac, ok = strings.Cut(tok, ".")
	if !ok || !IsWardenKeyID(akid) || len(mac) != bearerMACLen || len(akid) > maxKeyIDLen {
		return "", "", false
	}
	return akid, mac, true
}

// checkBearerMAC compares a presented MAC with the derived one in constant time.
func checkBearerMAC(master []byte, akid, mac string) bool {
	return hmac.Equal([]byte(mac), []byte(bearerMAC(master, akid)))
}

// IsBedrockAPIKey reports whether tok has the form of a real Amazon Bedrock
// API key: long-term keys start with "ABSK", short-term ones with
// "bedrock-api-key-" (a presigned CallWithBearerToken URL, encoded).
func IsBedrockAPIKey(tok string) bool {
	return strings.HasPrefix(tok, "ABSK") || strings.HasPrefix(tok, "bedrock-api-key-")
}

// PresentedAPIKeys returns the API keys a request presents: each
// "Authorization: Bearer" token and each x-api-key value (the forms the
// OpenAI, Anthropic and AWS SDKs send). SigV4 Authorization headers are not
// API keys and are left out.
func PresentedAPIKeys(r *http.Request) []string {
	var out []string
	for _, v := range r.Header.Values("Authorization") {
		scheme, tok, ok := strings.Cut(v, " ")
		if ok && strings.EqualFold(scheme, "Bearer") {
			out = append(out, strings.TrimSpace(tok))
		}
	}
	for _, v := range r.Header.Values("X-Api-Key") {
		out = append(out, strings.TrimSpace(v))
	}
	return out
}

// PresentsBedrockAPIKey reports whether the request carries a real Amazon
// Bedrock API key. Warden refuses such calls whatever else they carry: an
// app holding one can reach Bedrock without Warden, so it is a credential
// to revoke, not one to accept (and Warden never forwards it).
func PresentsBedrockAPIKey(r *http.Request) bool {
	for _, k := range PresentedAPIKeys(r) {
		if IsBedrockAPIKey(k) {
			return true
		}
	}
	return false
}
