package bedrocktest

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/warden-egress/warden/bedrock/sigv4"
)

// STSConfig configures an STSServer.
type STSConfig struct {
	IAM     *IAM   // the keys and roles; required
	Region  string // the signing region accepted (default "us-east-1")
	MaxSkew time.Duration
	Logf    func(format string, args ...any)
}

// STSCall is one request as the STS emulator received it.
type STSCall struct {
	Action      string
	RoleARN     string
	ExternalID  string
	SessionName string
	AccessKeyID string // the caller's
	SignatureOK bool
	Status      int
	Error       string // the error code answered, if any
}

// STSServer emulates sts:AssumeRole (Query protocol, SigV4 for service
// "sts"): the caller's key is checked against the IAM, the role's trust
// policy (principals, external id) is enforced, and the temporary
// credentials it issues are added to the IAM, so the EC2 and ECS emulators
// sharing it accept them for the role's account.
type STSServer struct {
	URL string

	cfg STSConfig
	hs  *http.Server

	mu    sync.Mutex
	calls []STSCall
}

// NewSTSServer starts an STS emulator on 127.0.0.1:0.
func NewSTSServer(cfg STSConfig) *STSServer {
	if cfg.IAM == nil {
		panic("bedrocktest: STSConfig.IAM is required")
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	if cfg.MaxSkew == 0 {
		cfg.MaxSkew = sigv4.DefaultMaxSkew
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(fmt.Sprintf("bedrocktest: listen: %v", err))
	}
	s := &STSServer{cfg: cfg, URL: "http://" + ln.Addr().String()}
	s.hs = &http.Server{Handler: http.HandlerFunc(s.serve), ReadHeaderTimeout: 30 * time.Second}
	go s.hs.Serve(ln) //nolint:errcheck // ends with Close
	return s
}

// Close stops the server.
func (s *STSServer) Close() { _ = s.hs.Close() }

// Calls returns the calls received so far.
func (s *STSServer) Calls() []STSCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

var roleSessionName = regexp.MustCompile(`^[\w+=,.@-]{2,64}$`)

func (s *STSServer) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	var call STSCall
	sw := &statusWriter{ResponseWriter: w}
	defer func() {
		call.Status = sw.status
		s.mu.Lock()
		s.calls = append(s.calls, call)
		s.mu.Unlock()
		if s.cfg.Logf != nil {
			s.cfg.Logf("bedrocktest sts: %s %s by %s -> %d %s", call.Action, call.RoleARN, call.AccessKeyID, call.Status, call.Error)
		}
	}()
	fail := func(status int, code, msg string) {
		call.Error = code
		stsError(sw, status, code, msg)
	}
	if err != nil || r.Method != http.MethodPost {
		fail(http.StatusBadRequest, "InvalidRequest", "The request received was invalid.")
		return
	}
	form, perr := url.ParseQuery(string(body))
	if perr != nil {
		fail(http.StatusBadRequest, "InvalidRequest", "The request received was invalid.")
		return
	}
	call.Action, call.RoleARN, call.ExternalID, call.SessionName = form.Get("Action"), form.Get("RoleArn"), form.Get("ExternalId"), form.Get("RoleSessionName")
	who, auth, verr := s.cfg.IAM.authenticate(r, body, nil, s.cfg.MaxSkew, "sts", s.cfg.Region)
	if a := auth.claimed; a != nil {
		call.AccessKeyID = a.AccessKeyID
	}
	if verr != nil {
		switch {
		case errors.Is(verr, errExpiredToken):
			fail(http.StatusForbidden, "ExpiredToken", "The security token included in the request is expired")
		case errors.Is(verr, sigv4.ErrUnknownKey), errors.Is(verr, errBadToken):
			fail(http.StatusForbidden, "InvalidClientTokenId", "The security token included in the request is invalid.")
		case errors.Is(verr, sigv4.ErrMissingAuth):
			fail(http.StatusForbidden, "MissingAuthenticationToken", "Request is missing Authentication Token")
		default:
			fail(http.StatusForbidden, "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided.")
		}
		return
	}
	call.SignatureOK, call.AccessKeyID = true, who.AccessKeyID
	if v := form.Get("Version"); v != "2011-06-15" {
		fail(http.StatusBadRequest, "InvalidAction", fmt.Sprintf("Could not find operation %s for version %s", call.Action, v))
		return
	}
	if call.Action != "AssumeRole" {
		fail(http.StatusBadRequest, "InvalidAction", fmt.Sprintf("Could not find operation %s for version 2011-06-15", call.Action))
		return
	}
	if !roleSessionName.MatchString(call.SessionName) {
		fail(http.StatusBadRequest, "ValidationError", fmt.Sprintf("1 validation error detected: Value '%s' at 'roleSessionName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]*", call.SessionName))
		return
	}
	duration := time.Hour
	if v := form.Get("DurationSeconds"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 900 || n > 43200 {
			fail(http.StatusBadRequest, "ValidationError", fmt.Sprintf("1 validation error detected: Value '%s' at 'durationSeconds' failed to satisfy constraint: Member must have value greater than or equal to 900", v))
			return
		}
		duration = time.Duration(n) * time.Second
	}
	denied := fmt.Sprintf("User: %s is not authorized to perform: sts:AssumeRole on resource: %s", who, call.RoleARN)
	role, ok := s.cfg.IAM.role(call.RoleARN)
	if !ok || !(slices.Contains(role.TrustedPrincipals, who.Account) || slices.Contains(role.TrustedPrincipals, who.ARN)) ||
		role.ExternalID != call.ExternalID {
		fail(http.StatusForbidden, "AccessDenied", denied)
		return
	}
	account := accountOfARN(role.ARN)
	roleName := role.ARN[strings.LastIndex(role.ARN, "/")+1:]
	sessionARN := "arn:aws:sts::" + account + ":assumed-role/" + roleName + "/" + call.SessionName
	id, key := s.cfg.IAM.issue(account, sessionARN, duration)

	type credsXML struct {
		AccessKeyID     string `xml:"AccessKeyId"`
		SecretAccessKey string `xml:"SecretAccessKey"`
		SessionToken    string `xml:"SessionToken"`
		Expiration      string `xml:"Expiration"`
	}
	type userXML struct {
		Arn           string `xml:"Arn"`
		AssumedRoleID string `xml:"AssumedRoleId"`
	}
	type resultXML struct {
		Credentials     credsXML `xml:"Credentials"`
		AssumedRoleUser userXML  `xml:"AssumedRoleUser"`
	}
	type respXML struct {
		XMLName   xml.Name  `xml:"AssumeRoleResponse"`
		XMLNS     string    `xml:"xmlns,attr"`
		Result    resultXML `xml:"AssumeRoleResult"`
		RequestID string    `xml:"ResponseMetadata>RequestId"`
	}
	w.Header().Set("Content-Type", "text/xml")
	sw.WriteHeader(http.StatusOK)
	_ = xml.NewEncoder(sw).Encode(respXML{XMLNS: stsXMLNS, RequestID: newUUID(), Result: resultXML{
		Credentials:     credsXML{AccessKeyID: id, SecretAccessKey: key.Secret, SessionToken: key.SessionToken, Expiration: key.Expires.Format(time.RFC3339)},
		AssumedRoleUser: userXML{Arn: sessionARN, AssumedRoleID: "AROA" + randomUpper(17) + ":" + call.SessionName},
	}})
}

const stsXMLNS = "https://sts.amazonaws.com/doc/2011-06-15/"

// stsError writes the Query protocol's error shape.
func stsError(w http.ResponseWriter, status int, code, msg string) {
	type errXML struct {
		Type    string `xml:"Type"`
		Code    string `xml:"Code"`
		Message string `xml:"Message"`
	}
	type respXML struct {
		XMLName   xml.Name `xml:"ErrorResponse"`
		XMLNS     string   `xml:"xmlns,attr"`
		Error     errXML   `xml:"Error"`
		RequestID string   `xml:"RequestId"`
	}
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(status)
	_ = xml.NewEncoder(w).Encode(respXML{XMLNS: stsXMLNS, Error: errXML{Type: "Sender", Code: code, Message: msg}, RequestID: newUUID()})
}
