package proxy

import (
	"net/http"
	"testing"
)

func TestForwardHeaderAllowlist(t *testing.T) {
	for _, h := range []string{"X-Amzn-Bedrock-GuardrailIdentifier", "X-Amzn-Bedrock-Service-Tier", "Content-Type", "X-Amzn-Bedrock-Accept"} {
		if !forwardHeader(http.CanonicalHeaderKey(h)) {
			t.Errorf("%s dropped", h)
		}
	}
	for _, h := range []string{"Authorization", "X-Amz-Security-Token", "X-Amz-Date", "X-Amzn-Bedrock-Future-Thing", "X-Warden-Token", "Content-Encoding", "Connection", "X-Forwarded-For"} {
		if forwardHeader(http.CanonicalHeaderKey(h)) {
			t.Errorf("%s forwarded", h)
		}
	}
}
