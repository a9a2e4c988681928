package proxy

// What forward-proxy and transparent modes share: a connection names a host
// (CONNECT target or TLS SNI); a Bedrock runtime host is intercepted with a
// leaf from Warden's name-constrained CA and its requests run through the same
// pipeline as endpoint mode; a host listed in egress.tunnel gets an untouched
// TCP tunnel; anything else is refused.

import (
	"crypto/tls"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/warden-egress/warden/bedrock"
)

// via says how an intercepted call reached Warden; endpoint calls have none.
type via struct {
	mode       string              // "proxy" or "transparent"
	host       bedrock.RuntimeHost // the CONNECT target or SNI name
	redirected bool                // came through an iptables REDIRECT to a loopback listener
}

// hostAction is what a proxy or transparent listener does with a host.
type hostAction int

const (
	refuseHost hostAction = iota
	interceptHost
	tunnelHost
)

// classify decides what happens to a connection for host:port. Bedrock
// runtime hosts are intercepted only when the CA may sign for them; they are
// never tunnelled, whatever egress.tunnel says.
func (s *Server) classify(host string, port int) (hostAction, bedrock.RuntimeHost) {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if rh, err := bedrock.ParseRuntimeHost(host); err == nil {
		if port == 443 && s.ca != nil && s.ca.Allowed(rh.Host) {
			return interceptHost, rh
		}
		return refuseHost, rh
	}
	if rh, err := bedrock.ParseAgentRuntimeHost(host); err == nil {
		if port == 443 && s.ca != nil && s.ca.Allowed(rh.Host) {
			return interceptHost, rh
		}
		return refuseHost, rh
	}
	if bedrock.IsRuntimeHost(host) || bedrock.IsAgentRuntimeHost(host) {
		return refuseHost, bedrock.RuntimeHost{} // a runtime-looking name Warden cannot parse: fail closed
	}
	// bedrock-mantle is inference, like the runtime: intercepted, never
	// tunnelled. (bedrock.REGION.amazonaws.com is the control plane: it is
	// tunnelled when egress.tunnel names it, else refused.)
	if sh, err := bedrock.ParseServiceHost(host); err == nil && sh.Service == bedrock.ServiceMantle {
		if port == 443 && s.ca != nil && s.ca.Allowed(sh.Host) {
			return interceptHost, sh
		}
		return refuseHost, sh
	}
	if strings.HasPrefix(host, "bedrock-mantle.") {
		return refuseHost, bedrock.RuntimeHost{} // a mantle-looking name Warden cannot parse: fail closed
	}
	for _, t := range s.tunnels {
		if t.Matches(host, port) {
			return tunnelHost, bedrock.RuntimeHost{}
		}
	}
	return refuseHost, bedrock.RuntimeHost{}
}

// splitHostPort splits "host:port" (port required, 1-65535).
func splitHostPort(hp string) (string, int, bool) {
	h, p, err := net.SplitHostPort(hp)
	if err != nil {
		return "", 0, false
	}
	n, err := strconv.Atoi(p)
	if err != nil || n < 1 || n > 65535 {
		return "", 0, false
	}
	return h, n, true
}

// interceptTLS is the server side of an intercepted connection to host: a
// leaf for exactly that name, HTTP/2 and HTTP/1.1 by ALPN.
func (s *Server) interceptTLS(host string) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2", "http/1.1"},
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			return s.ca.Leaf(host)
		},
	}
}

// checkIntercepted holds an intercepted request to the host its connection
// named, to the region Warden serves, and in passthrough to a signature
// Warden can forward intact. It also marks the call passthrough.
func (s *Server) checkIntercepted(r *http.Request, c *call, v *via) error {
	reqHost := strings.ToLower(strings.TrimSuffix(strings.TrimSuffix(r.Host, ":443"), "."))
	if reqHost != v.host.Host {
		return bedrock.Validation("warden: the Host %q does not match the intercepted host %q", r.Host, v.host.Host)
	}
	c.rec.Mode, c.rec.Host = v.mode, v.host.Host
	if v.host.Region != s.region {
		return bedrock.AccessDenied("warden: this Warden forwards to region %s; %s is in %s", s.region, v.host.Host, v.host.Region)
	}
	if s.cfg.Upstream.Signing != "passthrough" {
		return nil
	}
	c.passthrough = true
	c.rec.Signing = "passthrough"
	auth := r.Header.Values("Authorization")
	if len(auth) != 1 {
		return bedrock.AccessDenied("warden: passthrough needs exactly one Authorization header (a SigV4 signature)")
	}
	if scheme, _, _ := strings.Cut(auth[0], " "); strings.EqualFold(scheme, "Bearer") || len(r.Header.Values("X-Api-Key")) > 0 {
		// A Bedrock API key forwarded intact would work without Warden as
		// well; a Warden-issued bearer key means nothing to Bedrock.
		return bedrock.AccessDenied("warden: passthrough forwards SigV4 signatures only, not API keys (Bearer or x-api-key)")
	}
	sig, err := parseSigV4Authorization(auth[0])
	if err != nil {
		return bedrock.AccessDenied("warden: passthrough: %v", err)
	}
	c.accessKeyID = sig.accessKeyID
	for _, h := range sig.signedHeaders {
		if !passthroughSigned(h) {
			return bedrock.Validation("warden: passthrough: the signed header %q is not one Warden forwards; the signature could not be kept intact", h)
		}
	}
	return nil
}

// passthroughHeader names the caller's SigV4 headers, forwarded in
// passthrough only (re-signing replaces them).
func passthroughHeader(name string) bool {
	switch name {
	case "Authorization", "X-Amz-Date", "X-Amz-Security-Token", "X-Amz-Content-Sha256":
		return true
	}
	return false
}

// passthroughSigned reports whether a signed header (lower case) reaches the
// upstream exactly as the caller sent it.
func passthroughSigned(lower string) bool {
	switch lower {
	case "host", "content-length":
		return true
	}
	k := http.CanonicalHeaderKey(lower)
	return forwardHeader(k) || passthroughHeader(k)
}

type sigV4Auth struct {
	accessKeyID   string
	signedHeaders []string
}

// parseSigV4Authorization reads the parts of an AWS4-HMAC-SHA256
// Authorization header Warden needs; the signature itself is the upstream's
// to verify.
func parseSigV4Authorization(v string) (sigV4Auth, error) {
	rest, ok := strings.CutPrefix(v, "AWS4-HMAC-SHA256 ")
	if !ok {
		return sigV4Auth{}, errBadAuth("not AWS4-HMAC-SHA256")
	}
	var out sigV4Auth
	var haveSig bool
	for _, part := range strings.Split(rest, ",") {
		k, val, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return sigV4Auth{}, errBadAuth("malformed component")
		}
		switch k {
		case "Credential":
			akid, _, ok := strings.Cut(val, "/")
			if !ok || akid == "" || len(akid) > 128 {
				return sigV4Auth{}, errBadAuth("malformed Credential")
			}
			out.accessKeyID = akid
		case "SignedHeaders":
			if val == "" {
				return sigV4Auth{}, errBadAuth("empty SignedHeaders")
			}
			out.signedHeaders = strings.Split(val, ";")
		case "Signature":
			haveSig = val != ""
		}
	}
	if out.accessKeyID == "" || out.signedHeaders == nil || !haveSig {
		return sigV4Auth{}, errBadAuth("Credential, SignedHeaders and Signature are required")
	}
	return out, nil
}

type errBadAuth string

func (e errBadAuth) Error() string {
	return "the Authorization header is not a SigV4 signature Warden can pass through: " + string(e)
}
