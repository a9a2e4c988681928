package bedrocktest

import (
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/warden-egress/warden/bedrock/sigv4"
)

// EC2Config configures an EC2Server.
type EC2Config struct {
	Region      string            // default "us-east-1"
	Credentials map[string]string // access key id -> secret. Required unless IAM is set.
	// IAM, when set, replaces Credentials: it holds the keys (temporary
	// ones from the STS emulator included), and each caller sees only its
	// own account's network interfaces and VPC endpoints, and the endpoint
	// connections of the endpoint services its account owns.
	IAM     *IAM
	MaxSkew time.Duration // default 5m
	// PageSize is how many interfaces one page holds when the request has
	// no MaxResults (default 1000, as AWS).
	PageSize int
	Logf     func(format string, args ...any)
}

// ENI is a network interface fixture. Fields left empty are omitted from
// responses, as AWS omits absent members.
type ENI struct {
	ID               string // eni-...
	OwnerID          string // account id
	VpcID, SubnetID  string
	AvailabilityZone string
	Description      string
	InterfaceType    string // "interface" (default), "branch", "trunk", ...
	RequesterID      string
	RequesterManaged bool
	Status           string // default "in-use"
	MacAddress       string
	PrivateIPs       []string // the first is the primary
	IPv6             []string
	InstanceID       string // attachment; empty = not attached to an instance
	InstanceOwnerID  string
	Tags             map[string]string
}

// EC2Call is one request as the EC2 emulator received it.
type EC2Call struct {
	Action      string
	Form        url.Values
	AccessKeyID string
	Account     string // the caller's account, when the server has an IAM
	SignatureOK bool
	AuthError   string
	Status      int
}

// EC2Server emulates the EC2 Query API for DescribeNetworkInterfaces:
// form-encoded POSTs signed with SigV4 for service "ec2", XML responses and
// errors in the shapes AWS sends, nextToken pagination.
type EC2Server struct {
	URL string

	cfg EC2Config
	hs  *http.Server
	ln  net.Listener

	mu       sync.Mutex
	enis     map[string]ENI
	vpces    map[string]VPCEndpoint
	calls    []*EC2Call
	outage   int // 0 healthy; >0 status for every call; -1 reset every connection
	failNext []int
	delay    time.Duration
	hold     chan struct{} // non-nil: signed calls wait until it is closed
}

// NewEC2Server starts an EC2 emulator on 127.0.0.1:0.
func NewEC2Server(cfg EC2Config) *EC2Server {
	if len(cfg.Credentials) == 0 && cfg.IAM == nil {
		panic("bedrocktest: EC2Config.Credentials or IAM is required")
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	if cfg.MaxSkew == 0 {
		cfg.MaxSkew = sigv4.DefaultMaxSkew
	}
	if cfg.PageSize <= 0 {
		cfg.PageSize = 1000
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(fmt.Sprintf("bedrocktest: listen: %v", err))
	}
	s := &EC2Server{cfg: cfg, ln: ln, enis: map[string]ENI{}, vpces: map[string]VPCEndpoint{}, URL: "http://" + ln.Addr().String()}
	s.hs = &http.Server{Handler: http.HandlerFunc(s.serve), ReadHeaderTimeout: 30 * time.Second}
	go s.hs.Serve(ln) //nolint:errcheck // ends with Close
	return s
}

// Close stops the server.
func (s *EC2Server) Close() { _ = s.hs.Close() }

// PutENI adds or replaces a network interface.
func (s *EC2Server) PutENI(e ENI) {
	s.mu.Lock()
	s.enis[e.ID] = e
	s.mu.Unlock()
}

// VPCEndpoint is an interface VPC endpoint fixture: the consumer's side
// (DescribeVpcEndpoints, in OwnerID's account) and the endpoint service
// owner's side (DescribeVpcEndpointConnections, in ServiceOwnerID's
// account).
type VPCEndpoint struct {
	ID             string // vpce-...
	OwnerID        string // the account that created the endpoint (the spoke)
	VpcID          string
	SubnetIDs      []string
	ServiceID      string // vpce-svc-...
	ServiceName    string // com.amazonaws.vpce.REGION.vpce-svc-...
	ServiceOwnerID string // the account that owns the endpoint service
	State          string // default "available"
}

// PutVPCEndpoint adds or replaces a VPC endpoint.
func (s *EC2Server) PutVPCEndpoint(e VPCEndpoint) {
	s.mu.Lock()
	s.vpces[e.ID] = e
	s.mu.Unlock()
}

// DeleteENI removes a network interface (its addresses stop resolving).
func (s *EC2Server) DeleteENI(id string) {
	s.mu.Lock()
	delete(s.enis, id)
	s.mu.Unlock()
}

// AssignPrivateIP adds ip to an ENI's secondary private addresses, as
// ec2:AssignPrivateIpAddresses with a chosen address does. Unlike AWS the
// emulator lets another ENI keep the address, to model overlapping VPCs.
// It reports whether the ENI exists.
func (s *EC2Server) AssignPrivateIP(eniID, ip string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.enis[eniID]
	if !ok {
		return false
	}
	if !containsString(e.PrivateIPs, ip) {
		e.PrivateIPs = append(append([]string(nil), e.PrivateIPs...), ip)
	}
	s.enis[eniID] = e
	return true
}

// MovePrivateIP unassigns ip from every ENI that holds it and assigns it to
// eniID: an address released by one workload and requested by another.
// It reports whether eniID exists.
func (s *EC2Server) MovePrivateIP(ip, eniID string) bool {
	s.mu.Lock()
	for id, e := range s.enis {
		if !containsString(e.PrivateIPs, ip) {
			continue
		}
		var keep []string
		for _, p := range e.PrivateIPs {
			if p != ip {
				keep = append(keep, p)
			}
		}
		e.PrivateIPs = keep
		s.enis[id] = e
	}
	s.mu.Unlock()
	return s.AssignPrivateIP(eniID, ip)
}

// SetOutage makes every call fail: status > 0 answers that status with the
// EC2 error AWS uses for it (503 Unavailable, 500 InternalError, 503 with
// throttling is RequestLimitExceeded via FailNext), -1 resets connections
// before any response, 0 ends the outage.
func (s *EC2Server) SetOutage(status int) {
	s.mu.Lock()
	s.outage = status
	s.mu.Unlock()
}

// FailNext makes the next len(statuses) calls fail with these statuses
// (-1 resets the connection).
func (s *EC2Server) FailNext(statuses ...int) {
	s.mu.Lock()
	s.failNext = append(s.failNext, statuses...)
	s.mu.Unlock()
}

// Hold keeps every signed call from now on waiting, after it is recorded in
// Calls, until release is called: a test can hold lookups in flight and
// count them without depending on timing. release is idempotent.
func (s *EC2Server) Hold() (release func()) {
	ch := make(chan struct{})
	s.mu.Lock()
	s.hold = ch
	s.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			if s.hold == ch {
				s.hold = nil
			}
			s.mu.Unlock()
			close(ch)
		})
	}
}

// SetDelay delays every response (to test singleflight and timeouts).
func (s *EC2Server) SetDelay(d time.Duration) {
	s.mu.Lock()
	s.delay = d
	s.mu.Unlock()
}

// Calls returns a copy of the calls received so far.
func (s *EC2Server) Calls() []EC2Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]EC2Call, len(s.calls))
	for i, c := range s.calls {
		out[i] = *c
	}
	return out
}

// ResetCalls forgets recorded calls.
func (s *EC2Server) ResetCalls() {
	s.mu.Lock()
	s.calls = nil
	s.mu.Unlock()
}

func (s *EC2Server) logf(format string, args ...any) {
	if s.cfg.Logf != nil {
		s.cfg.Logf(format, args...)
	}
}

const ec2XMLNS = "http://ec2.amazonaws.com/doc/2016-11-15/"

func (s *EC2Server) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	call := &EC2Call{}
	s.mu.Lock()
	s.calls = append(s.calls, call)
	s.mu.Unlock()
	sw := &statusWriter{ResponseWriter: w}
	defer func() {
		s.mu.Lock()
		call.Status = sw.status
		s.mu.Unlock()
		s.logf("bedrocktest ec2: %s %s -> %d (auth=%v %s)", call.Action, call.Form.Encode(), sw.status, call.SignatureOK, call.AuthError)
	}()
	if err != nil {
		ec2Error(sw, http.StatusBadRequest, "InvalidRequest", "The request received was invalid.")
		return
	}
	if r.Method != http.MethodPost && r.Method != http.MethodGet {
		ec2Error(sw, http.StatusBadRequest, "InvalidRequest", "The request received was invalid.")
		return
	}
	form, perr := url.ParseQuery(string(body))
	if r.Method == http.MethodGet {
		form, perr = url.ParseQuery(r.URL.RawQuery)
	}
	if perr != nil {
		ec2Error(sw, http.StatusBadRequest, "InvalidRequest", "The request received was invalid.")
		return
	}
	s.mu.Lock()
	call.Action, call.Form = form.Get("Action"), form
	s.mu.Unlock()

	// Authentication comes first, as on AWS.
	who, auth, verr := s.cfg.IAM.authenticate(r, body, s.cfg.Credentials, s.cfg.MaxSkew, "ec2", s.cfg.Region)
	res := auth.res
	if verr != nil {
		s.mu.Lock()
		call.AuthError = verr.Error()
		if a := auth.claimed; a != nil {
			call.AccessKeyID = a.AccessKeyID
		}
		s.mu.Unlock()
		switch {
		case errors.Is(verr, sigv4.ErrMissingAuth):
			ec2Error(sw, http.StatusUnauthorized, "AuthFailure", "AWS was not able to validate the provided access credentials")
		case errors.Is(verr, sigv4.ErrUnknownKey), errors.Is(verr, errBadToken), errors.Is(verr, errExpiredToken):
			ec2Error(sw, http.StatusUnauthorized, "AuthFailure", "AWS was not able to validate the provided access credentials")
		case errors.Is(verr, sigv4.ErrExpired):
			ec2Error(sw, http.StatusBadRequest, "RequestExpired", "Request has expired.")
		case errors.Is(verr, sigv4.ErrMalformed):
			ec2Error(sw, http.StatusBadRequest, "IncompleteSignature", "Request must contain a signature that conforms to AWS standards")
		default:
			ec2Error(sw, http.StatusForbidden, "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.")
		}
		return
	}
	s.mu.Lock()
	call.SignatureOK, call.AccessKeyID, call.Account = true, res.AccessKeyID, who.Account
	status := s.outage
	if len(s.failNext) > 0 {
		status, s.failNext = s.failNext[0], s.failNext[1:]
	}
	delay, hold := s.delay, s.hold
	s.mu.Unlock()

	if hold != nil {
		select {
		case <-hold:
		case <-r.Context().Done():
			return
		}
	}
	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	switch {
	case status < 0:
		abort(sw, r)
	case status == http.StatusServiceUnavailable:
		ec2Error(sw, status, "Unavailable", "The server is overloaded and can't handle the request.")
		return
	case status == http.StatusTooManyRequests:
		ec2Error(sw, http.StatusServiceUnavailable, "RequestLimitExceeded", "Request limit exceeded.")
		return
	case status > 0:
		ec2Error(sw, status, "InternalError", "An internal error has occurred")
		return
	}

	if v := form.Get("Version"); v != "2016-11-15" {
		ec2Error(sw, http.StatusBadRequest, "InvalidParameterValue", fmt.Sprintf("Value (%s) for parameter Version is invalid.", v))
		return
	}
	switch a := form.Get("Action"); a {
	case "DescribeNetworkInterfaces":
		s.describeNetworkInterfaces(sw, form, who)
	case "DescribeVpcEndpointConnections":
		s.describeVpcEndpointConnections(sw, form, who)
	case "DescribeVpcEndpoints":
		s.describeVpcEndpoints(sw, form, who)
	case "":
		ec2Error(sw, http.StatusBadRequest, "MissingAction", "The request must contain the parameter Action")
	default:
		ec2Error(sw, http.StatusBadRequest, "InvalidAction", fmt.Sprintf("The action %s is not valid for this web service.", a))
	}
}

// ec2Filter is one Filter.N from the request.
type ec2Filter struct {
	name   string
	values []string
}

func parseFilters(form url.Values) ([]ec2Filter, error) {
	var out []ec2Filter
	for n := 1; ; n++ {
		p := "Filter." + strconv.Itoa(n) + "."
		name, ok := form[p+"Name"]
		if !ok {
			// Filters are numbered from 1 without gaps.
			for k := range form {
				if strings.HasPrefix(k, "Filter.") && !strings.HasPrefix(k, "Filter.0.") {
					idx := strings.SplitN(strings.TrimPrefix(k, "Filter."), ".", 2)[0]
					if i, err := strconv.Atoi(idx); err != nil || i >= n {
						return nil, fmt.Errorf("The parameter %s is not recognized", k)
					}
				}
			}
			return out, nil
		}
		f := ec2Filter{name: name[0]}
		for m := 1; ; m++ {
			v, ok := form[p+"Value."+strconv.Itoa(m)]
			if !ok {
				break
			}
			f.values = append(f.values, v[0])
		}
		out = append(out, f)
	}
}

func (s *EC2Server) describeNetworkInterfaces(w http.ResponseWriter, form url.Values, who principal) {
	filters, err := parseFilters(form)
	if err != nil {
		ec2Error(w, http.StatusBadRequest, "UnknownParameter", err.Error())
		return
	}
	var ids []string
	for m := 1; ; m++ {
		v, ok := form["NetworkInterfaceId."+strconv.Itoa(m)]
		if !ok {
			break
		}
		ids = append(ids, v[0])
	}
	pageSize := s.cfg.PageSize
	if v := form.Get("MaxResults"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 5 || n > 1000 {
			ec2Error(w, http.StatusBadRequest, "InvalidParameterValue", fmt.Sprintf("Value ( %s ) for parameter maxResults is invalid. Parameter must be between 5 and 1000.", v))
			return
		}
		if len(ids) > 0 {
			ec2Error(w, http.StatusBadRequest, "InvalidParameterCombination", "The parameter NetworkInterfaceIds cannot be used with the parameter MaxResults")
			return
		}
		pageSize = n
	}
	offset := 0
	if tok := form.Get("NextToken"); tok != "" {
		b, err := base64.RawURLEncoding.DecodeString(tok)
		n, aerr := strconv.Atoi(strings.TrimPrefix(string(b), "offset:"))
		if err != nil || aerr != nil || !strings.HasPrefix(string(b), "offset:") || n < 0 {
			ec2Error(w, http.StatusBadRequest, "InvalidParameterValue", "The nextToken is invalid.")
			return
		}
		offset = n
	}

	s.mu.Lock()
	all := make([]ENI, 0, len(s.enis))
	for _, e := range s.enis {
		if who.visible(e.OwnerID) {
			all = append(all, e)
		}
	}
	s.mu.Unlock()
	sort.Slice(all, func(i, j int) bool { return all[i].ID < all[j].ID })

	var matched []ENI
	for _, e := range all {
		if len(ids) > 0 && !containsString(ids, e.ID) {
			continue
		}
		ok := true
		for _, f := range filters {
			m, known := matchENIFilter(e, f)
			if !known {
				ec2Error(w, http.StatusBadRequest, "InvalidParameterValue", fmt.Sprintf("The filter '%s' is invalid", f.name))
				return
			}
			if !m {
				ok = false
				break
			}
		}
		if ok {
			matched = append(matched, e)
		}
	}
	for _, id := range ids {
		found := false
		for _, e := range all {
			found = found || e.ID == id
		}
		if !found {
			ec2Error(w, http.StatusBadRequest, "InvalidNetworkInterfaceID.NotFound", fmt.Sprintf("The networkInterface ID '%s' does not exist", id))
			return
		}
	}
	if offset > len(matched) {
		offset = len(matched)
	}
	page := matched[offset:]
	resp := describeNIResponse{XMLNS: ec2XMLNS, RequestID: newUUID()}
	if len(page) > pageSize {
		page = page[:pageSize]
		resp.NextToken = base64.RawURLEncoding.EncodeToString([]byte("offset:" + strconv.Itoa(offset+pageSize)))
	}
	for _, e := range page {
		resp.Set = append(resp.Set, s.eniXML(e))
	}
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, xml.Header)
	_ = xml.NewEncoder(w).Encode(resp)
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// matchENIFilter applies one filter; known is false for filter names the
// emulator does not implement (AWS rejects unknown names the same way).
func matchENIFilter(e ENI, f ec2Filter) (match, known bool) {
	anyOf := func(have []string) bool {
		for _, h := range have {
			for _, v := range f.values {
				if globMatch(v, h) {
					return true
				}
			}
		}
		return false
	}
	switch f.name {
	case "addresses.private-ip-address", "private-ip-address":
		if f.name == "private-ip-address" && len(e.PrivateIPs) > 0 {
			return anyOf(e.PrivateIPs[:1]), true
		}
		return anyOf(e.PrivateIPs), true
	case "ipv6-addresses.ipv6-address":
		return anyOf(e.IPv6), true
	case "network-interface-id":
		return anyOf([]string{e.ID}), true
	case "owner-id":
		return anyOf([]string{e.OwnerID}), true
	case "vpc-id":
		return anyOf([]string{e.VpcID}), true
	case "subnet-id":
		return anyOf([]string{e.SubnetID}), true
	case "interface-type":
		return anyOf([]string{interfaceType(e)}), true
	case "attachment.instance-id":
		return anyOf([]string{e.InstanceID}), true
	}
	if k, ok := strings.CutPrefix(f.name, "tag:"); ok {
		v, has := e.Tags[k]
		return has && anyOf([]string{v}), true
	}
	if f.name == "tag-key" {
		keys := make([]string, 0, len(e.Tags))
		for k := range e.Tags {
			keys = append(keys, k)
		}
		return anyOf(keys), true
	}
	return false, false
}

// globMatch implements the * and ? wildcards EC2 filters accept.
func globMatch(pattern, s string) bool {
	if pattern == "" {
		return s == ""
	}
	switch pattern[0] {
	case '*':
		for i := 0; i <= len(s); i++ {
			if globMatch(pattern[1:], s[i:]) {
				return true
			}
		}
		return false
	case '?':
		return s != "" && globMatch(pattern[1:], s[1:])
	case '\\':
		if len(pattern) > 1 {
			pattern = pattern[1:]
		}
	}
	return s != "" && pattern[0] == s[0] && globMatch(pattern[1:], s[1:])
}

func interfaceType(e ENI) string {
	if e.InterfaceType == "" {
		return "interface"
	}
	return e.InterfaceType
}

// The XML shapes, member names as EC2 sends them (lowerCamel, item lists).
type describeNIResponse struct {
	XMLName   xml.Name `xml:"DescribeNetworkInterfacesResponse"`
	XMLNS     string   `xml:"xmlns,attr"`
	RequestID string   `xml:"requestId"`
	Set       []niXML  `xml:"networkInterfaceSet>item"`
	NextToken string   `xml:"nextToken,omitempty"`
}

type niXML struct {
	ID               string         `xml:"networkInterfaceId"`
	SubnetID         string         `xml:"subnetId,omitempty"`
	VpcID            string         `xml:"vpcId,omitempty"`
	AvailabilityZone string         `xml:"availabilityZone,omitempty"`
	Description      string         `xml:"description"`
	OwnerID          string         `xml:"ownerId,omitempty"`
	RequesterID      string         `xml:"requesterId,omitempty"`
	RequesterManaged bool           `xml:"requesterManaged"`
	Status           string         `xml:"status"`
	MacAddress       string         `xml:"macAddress,omitempty"`
	PrivateIP        string         `xml:"privateIpAddress,omitempty"`
	SourceDestCheck  bool           `xml:"sourceDestCheck"`
	Groups           []groupXML     `xml:"groupSet>item"`
	Attachment       *attachXML     `xml:"attachment,omitempty"`
	Tags             []tagXML       `xml:"tagSet>item"`
	PrivateIPs       []privateIPXML `xml:"privateIpAddressesSet>item"`
	IPv6             []ipv6XML      `xml:"ipv6AddressesSet>item"`
	InterfaceType    string         `xml:"interfaceType"`
}

type groupXML struct {
	ID   string `xml:"groupId"`
	Name string `xml:"groupName"`
}

type attachXML struct {
	ID                  string `xml:"attachmentId"`
	InstanceID          string `xml:"instanceId"`
	InstanceOwnerID     string `xml:"instanceOwnerId"`
	DeviceIndex         int    `xml:"deviceIndex"`
	Status              string `xml:"status"`
	AttachTime          string `xml:"attachTime"`
	DeleteOnTermination bool   `xml:"deleteOnTermination"`
}

type tagXML struct {
	Key   string `xml:"key"`
	Value string `xml:"value"`
}

type privateIPXML struct {
	IP      string `xml:"privateIpAddress"`
	Primary bool   `xml:"primary"`
}

type ipv6XML struct {
	IP string `xml:"ipv6Address"`
}

func (s *EC2Server) eniXML(e ENI) niXML {
	x := niXML{
		ID: e.ID, SubnetID: e.SubnetID, VpcID: e.VpcID, AvailabilityZone: e.AvailabilityZone,
		Description: e.Description, OwnerID: e.OwnerID, RequesterID: e.RequesterID, RequesterManaged: e.RequesterManaged,
		Status: e.Status, MacAddress: e.MacAddress, SourceDestCheck: true, InterfaceType: interfaceType(e),
		Groups: []groupXML{{ID: "sg-0123456789abcdef0", Name: "default"}},
	}
	if x.Status == "" {
		x.Status = "in-use"
	}
	for i, ip := range e.PrivateIPs {
		if i == 0 {
			x.PrivateIP = ip
		}
		x.PrivateIPs = append(x.PrivateIPs, privateIPXML{IP: ip, Primary: i == 0})
	}
	for _, ip := range e.IPv6 {
		x.IPv6 = append(x.IPv6, ipv6XML{IP: ip})
	}
	if e.InstanceID != "" {
		owner := e.InstanceOwnerID
		if owner == "" {
			owner = e.OwnerID
		}
		x.Attachment = &attachXML{
			ID: "eni-attach-" + strings.TrimPrefix(e.ID, "eni-"), InstanceID: e.InstanceID, InstanceOwnerID: owner,
			Status: "attached", AttachTime: "2024-01-02T03:04:05.000Z", DeleteOnTermination: true,
		}
	}
	keys := make([]string, 0, len(e.Tags))
	for k := range e.Tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		x.Tags = append(x.Tags, tagXML{Key: k, Value: e.Tags[k]})
	}
	return x
}

// ec2Error writes the EC2 Query error shape:
// <Response><Errors><Error><Code/><Message/></Error></Errors><RequestID/></Response>.
func ec2Error(w http.ResponseWriter, status int, code, msg string) {
	type errXML struct {
		Code    string `xml:"Code"`
		Message string `xml:"Message"`
	}
	type respXML struct {
		XMLName   xml.Name `xml:"Response"`
		Errors    []errXML `xml:"Errors>Error"`
		RequestID string   `xml:"RequestID"`
	}
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, xml.Header)
	_ = xml.NewEncoder(w).Encode(respXML{Errors: []errXML{{Code: code, Message: msg}}, RequestID: newUUID()})
}
