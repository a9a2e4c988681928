package bedrocktest

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/warden-egress/warden/bedrock/sigv4"
)

// IAM is the account model the AWS account emulators share (EC2, STS,
// ECS): access keys and the account and principal each belongs to, and the
// roles STS lets callers assume. A key STS issues carries a session token
// and an expiry, and every emulator given the same IAM accepts it, so a
// test can follow a cross-account call from Warden's own key through
// sts:AssumeRole to the other account's EC2 and ECS, signatures checked at
// each step. Emulators that are given an IAM answer each caller for its own
// account only, as AWS does. Safe for concurrent use.
type IAM struct {
	mu    sync.Mutex
	keys  map[string]IAMKey
	roles map[string]IAMRole
}

// IAMKey is one access key.
type IAMKey struct {
	Secret string
	// SessionToken, when set, must be presented (X-Amz-Security-Token)
	// with the key, as for temporary credentials.
	SessionToken string
	Account      string // the 12-digit account the key's principal is in
	ARN          string // the principal: a user or an assumed-role session
	Expires      time.Time
}

// IAMRole is a role STS may let callers assume.
type IAMRole struct {
	ARN string // arn:aws:iam::ACCOUNT:role/NAME
	// TrustedPrincipals are the account ids or principal ARNs its trust
	// policy names.
	TrustedPrincipals []string
	// ExternalID, when set, must be passed to AssumeRole (the
	// sts:ExternalId condition that guards against confused deputies).
	ExternalID string
}

// NewIAM returns an empty account model.
func NewIAM() *IAM {
	return &IAM{keys: map[string]IAMKey{}, roles: map[string]IAMRole{}}
}

// AddUser adds a long-term key for user NAME in account.
func (i *IAM) AddUser(account, name, accessKeyID, secret string) {
	i.AddKey(accessKeyID, IAMKey{Secret: secret, Account: account, ARN: "arn:aws:iam::" + account + ":user/" + name})
}

// AddKey adds or replaces a key.
func (i *IAM) AddKey(accessKeyID string, k IAMKey) {
	i.mu.Lock()
	i.keys[accessKeyID] = k
	i.mu.Unlock()
}

// AddRole adds or replaces a role.
func (i *IAM) AddRole(r IAMRole) {
	i.mu.Lock()
	i.roles[r.ARN] = r
	i.mu.Unlock()
}

// Key returns a key by id.
func (i *IAM) Key(accessKeyID string) (IAMKey, bool) {
	i.mu.Lock()
	defer i.mu.Unlock()
	k, ok := i.keys[accessKeyID]
	return k, ok
}

func (i *IAM) role(arn string) (IAMRole, bool) {
	i.mu.Lock()
	defer i.mu.Unlock()
	r, ok := i.roles[arn]
	return r, ok
}

// Token failures, after a valid signature: AWS answers these with its own
// codes (InvalidClientTokenId, ExpiredToken).
var (
	errBadToken     = errors.New("bedrocktest: the security token included in the request is invalid")
	errExpiredToken = errors.New("bedrocktest: the security token included in the request is expired")
)

// principal is who signed a request, as an emulator with an IAM sees it.
type principal struct {
	AccessKeyID string
	Account     string // "" when the emulator has no IAM (every resource is visible)
	ARN         string
}

// authenticate verifies r's signature against the IAM's keys (or creds
// when i is nil), then a temporary key's session token and expiry.
func (i *IAM) authenticate(r *http.Request, body []byte, creds map[string]string, maxSkew time.Duration, service, region string) (principal, authResult, error) {
	lookup := func(id string) (string, bool) {
		sec, ok := creds[id]
		return sec, ok
	}
	if i != nil {
		lookup = func(id string) (string, bool) {
			k, ok := i.Key(id)
			return k.Secret, ok
		}
	}
	res, err := sigv4.Verify(r, body, lookup, sigv4.Options{Now: time.Now(), MaxSkew: maxSkew, Service: service, Region: region})
	if err != nil {
		a := authResult{err: err}
		if !errors.As(err, &a.apiErr) {
			a.apiErr = &sigv4.Error{Code: sigv4.CodeInvalidSignature, Status: http.StatusForbidden, Message: sigv4.MsgInvalidSignature}
		}
		if c, perr := sigv4.ParseAuthorization(r.Header.Get("Authorization")); perr == nil {
			a.claimed = c
		}
		return principal{}, a, err
	}
	p := principal{AccessKeyID: res.AccessKeyID}
	if i == nil {
		return p, authResult{res: res}, nil
	}
	k, _ := i.Key(res.AccessKeyID)
	if k.SessionToken != "" || res.SessionToken != "" {
		// The token is signed (the SDKs sign X-Amz-Security-Token), so
		// comparing it is enough.
		if res.SessionToken != k.SessionToken || !slices.Contains(res.SignedHeaders, "x-amz-security-token") {
			return p, authResult{res: res}, errBadToken
		}
	}
	if !k.Expires.IsZero() && time.Now().After(k.Expires) {
		return p, authResult{res: res}, errExpiredToken
	}
	p.Account, p.ARN = k.Account, k.ARN
	return p, authResult{res: res}, nil
}

// issue creates temporary credentials for an assumed-role session.
func (i *IAM) issue(account, sessionARN string, d time.Duration) (id string, k IAMKey) {
	id = "ASIA" + randomUpper(16)
	k = IAMKey{Secret: randomB64(30), SessionToken: randomB64(96), Account: account, ARN: sessionARN, Expires: time.Now().Add(d).UTC().Truncate(time.Second)}
	i.AddKey(id, k)
	return id, k
}

func randomUpper(n int) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for j := range b {
		b[j] = alphabet[int(b[j])%len(alphabet)]
	}
	return string(b)
}

func randomB64(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

// accountOfARN returns the account field of an ARN ("" if it has none).
func accountOfARN(arn string) string {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) < 6 || parts[0] != "arn" {
		return ""
	}
	return parts[4]
}

// visible reports whether a caller may see a resource owned by account:
// every resource when the emulator has no IAM (p.Account is empty).
func (p principal) visible(account string) bool {
	return p.Account == "" || p.Account == account
}

func (p principal) String() string {
	if p.ARN != "" {
		return p.ARN
	}
	return fmt.Sprintf("key %s", p.AccessKeyID)
}
