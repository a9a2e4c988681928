package bedrocktest

import (
	"errors"
	"net/http"
	"time"

	"github.com/warden-egress/warden/bedrock/sigv4"
)

// authResult is what an emulator learns from a request's SigV4 signature.
type authResult struct {
	res     *sigv4.Result        // on success
	claimed *sigv4.Authorization // the parsed header, when it parses (for recording failed calls)
	err     error                // the verifier's error (nil on success)
	apiErr  *sigv4.Error         // err as the AWS error shape to answer with
}

// authenticate verifies r's signature against creds, the one check all the
// emulators run first, as AWS does.
func authenticate(r *http.Request, body []byte, creds map[string]string, maxSkew time.Duration, service, region string) authResult {
	res, err := sigv4.Verify(r, body, func(id string) (string, bool) {
		sec, ok := creds[id]
		return sec, ok
	}, sigv4.Options{Now: time.Now(), MaxSkew: maxSkew, Service: service, Region: region})
	if err == nil {
		return authResult{res: res}
	}
	a := authResult{err: err}
	if !errors.As(err, &a.apiErr) {
		a.apiErr = &sigv4.Error{Code: sigv4.CodeInvalidSignature, Status: http.StatusForbidden, Message: sigv4.MsgInvalidSignature}
	}
	if c, perr := sigv4.ParseAuthorization(r.Header.Get("Authorization")); perr == nil {
		a.claimed = c
	}
	return a
}
