package bedrocktest

import (
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// The EC2 actions about interface VPC endpoints: DescribeVpcEndpoints (the
// consumer's view, from the endpoint owner's account) and
// DescribeVpcEndpointConnections (the endpoint service owner's view of who
// connected to its services).

func vpceState(e VPCEndpoint) string {
	if e.State == "" {
		return "available"
	}
	return e.State
}

// pageOf applies MaxResults (5..1000 as EC2 checks for these actions) and
// NextToken to n matched items, answering the error itself.
func pageOf(w http.ResponseWriter, form url.Values, n int) (from, to int, next string, ok bool) {
	size := 1000
	if v := form.Get("MaxResults"); v != "" {
		m, err := strconv.Atoi(v)
		if err != nil || m < 5 || m > 1000 {
			ec2Error(w, http.StatusBadRequest, "InvalidParameterValue", fmt.Sprintf("Value ( %s ) for parameter maxResults is invalid. Parameter must be between 5 and 1000.", v))
			return 0, 0, "", false
		}
		size = m
	}
	if tok := form.Get("NextToken"); tok != "" {
		b, err := base64.RawURLEncoding.DecodeString(tok)
		m, aerr := strconv.Atoi(strings.TrimPrefix(string(b), "offset:"))
		if err != nil || aerr != nil || !strings.HasPrefix(string(b), "offset:") || m < 0 {
			ec2Error(w, http.StatusBadRequest, "InvalidParameterValue", "The nextToken is invalid.")
			return 0, 0, "", false
		}
		from = min(m, n)
	}
	to = n
	if to-from > size {
		to = from + size
		next = base64.RawURLEncoding.EncodeToString([]byte("offset:" + strconv.Itoa(to)))
	}
	return from, to, next, true
}

func (s *EC2Server) sortedVPCEs() []VPCEndpoint {
	s.mu.Lock()
	all := make([]VPCEndpoint, 0, len(s.vpces))
	for _, e := range s.vpces {
		all = append(all, e)
	}
	s.mu.Unlock()
	sort.Slice(all, func(i, j int) bool { return all[i].ID < all[j].ID })
	return all
}

func (s *EC2Server) describeVpcEndpointConnections(w http.ResponseWriter, form url.Values, who principal) {
	filters, err := parseFilters(form)
	if err != nil {
		ec2Error(w, http.StatusBadRequest, "UnknownParameter", err.Error())
		return
	}
	var matched []VPCEndpoint
	for _, e := range s.sortedVPCEs() {
		if !who.visible(e.ServiceOwnerID) {
			continue
		}
		ok := true
		for _, f := range filters {
			var have string
			switch f.name {
			case "service-id":
				have = e.ServiceID
			case "vpc-endpoint-owner":
				have = e.OwnerID
			case "vpc-endpoint-state":
				have = vpceState(e)
			case "vpc-endpoint-id":
				have = e.ID
			default:
				ec2Error(w, http.StatusBadRequest, "InvalidParameterValue", fmt.Sprintf("The filter '%s' is invalid", f.name))
				return
			}
			if !anyGlob(f.values, have) {
				ok = false
				break
			}
		}
		if ok {
			matched = append(matched, e)
		}
	}
	from, to, next, ok := pageOf(w, form, len(matched))
	if !ok {
		return
	}
	type connXML struct {
		ServiceID       string `xml:"serviceId"`
		VpcEndpointID   string `xml:"vpcEndpointId"`
		Owner           string `xml:"vpcEndpointOwner"`
		State           string `xml:"vpcEndpointState"`
		Created         string `xml:"creationTimestamp"`
		ConnectionID    string `xml:"vpcEndpointConnectionId"`
		VpcEndpointRgn  string `xml:"vpcEndpointRegion"`
		IPAddressFamily string `xml:"ipAddressType"`
	}
	type respXML struct {
		XMLName   xml.Name  `xml:"DescribeVpcEndpointConnectionsResponse"`
		XMLNS     string    `xml:"xmlns,attr"`
		RequestID string    `xml:"requestId"`
		Set       []connXML `xml:"vpcEndpointConnectionSet>item"`
		NextToken string    `xml:"nextToken,omitempty"`
	}
	resp := respXML{XMLNS: ec2XMLNS, RequestID: newUUID(), NextToken: next}
	for _, e := range matched[from:to] {
		resp.Set = append(resp.Set, connXML{ServiceID: e.ServiceID, VpcEndpointID: e.ID, Owner: e.OwnerID, State: vpceState(e),
			Created: "2024-01-02T03:04:05.000Z", ConnectionID: "vpce-con-" + strings.TrimPrefix(e.ID, "vpce-"),
			VpcEndpointRgn: s.cfg.Region, IPAddressFamily: "ipv4"})
	}
	writeEC2XML(w, resp)
}

func (s *EC2Server) describeVpcEndpoints(w http.ResponseWriter, form url.Values, who principal) {
	filters, err := parseFilters(form)
	if err != nil {
		ec2Error(w, http.StatusBadRequest, "UnknownParameter", err.Error())
		return
	}
	var ids []string
	for m := 1; ; m++ {
		v, ok := form["VpcEndpointId."+strconv.Itoa(m)]
		if !ok {
			break
		}
		ids = append(ids, v[0])
	}
	all := s.sortedVPCEs()
	for _, id := range ids {
		found := false
		for _, e := range all {
			found = found || (e.ID == id && who.visible(e.OwnerID))
		}
		if !found {
			ec2Error(w, http.StatusBadRequest, "InvalidVpcEndpointId.NotFound", fmt.Sprintf("The Vpc Endpoint Id '%s' does not exist", id))
			return
		}
	}
	var matched []VPCEndpoint
	for _, e := range all {
		if !who.visible(e.OwnerID) || (len(ids) > 0 && !containsString(ids, e.ID)) {
			continue
		}
		ok := true
		for _, f := range filters {
			var have []string
			switch f.name {
			case "vpc-id":
				have = []string{e.VpcID}
			case "vpc-endpoint-id":
				have = []string{e.ID}
			case "service-name":
				have = []string{e.ServiceName}
			case "vpc-endpoint-state":
				have = []string{vpceState(e)}
			case "vpc-endpoint-type":
				have = []string{"Interface"}
			default:
				ec2Error(w, http.StatusBadRequest, "InvalidParameterValue", fmt.Sprintf("The filter '%s' is invalid", f.name))
				return
			}
			match := false
			for _, h := range have {
				match = match || anyGlob(f.values, h)
			}
			if !match {
				ok = false
				break
			}
		}
		if ok {
			matched = append(matched, e)
		}
	}
	from, to, next, ok := pageOf(w, form, len(matched))
	if !ok {
		return
	}
	type vpceXML struct {
		ID         string   `xml:"vpcEndpointId"`
		Type       string   `xml:"vpcEndpointType"`
		VpcID      string   `xml:"vpcId"`
		Service    string   `xml:"serviceName"`
		State      string   `xml:"state"`
		Subnets    []string `xml:"subnetIdSet>item"`
		OwnerID    string   `xml:"ownerId"`
		Requester  bool     `xml:"requesterManaged"`
		PrivateDNS bool     `xml:"privateDnsEnabled"`
		Created    string   `xml:"creationTimestamp"`
	}
	type respXML struct {
		XMLName   xml.Name  `xml:"DescribeVpcEndpointsResponse"`
		XMLNS     string    `xml:"xmlns,attr"`
		RequestID string    `xml:"requestId"`
		Set       []vpceXML `xml:"vpcEndpointSet>item"`
		NextToken string    `xml:"nextToken,omitempty"`
	}
	resp := respXML{XMLNS: ec2XMLNS, RequestID: newUUID(), NextToken: next}
	for _, e := range matched[from:to] {
		resp.Set = append(resp.Set, vpceXML{ID: e.ID, Type: "Interface", VpcID: e.VpcID, Service: e.ServiceName, State: vpceState(e),
			Subnets: e.SubnetIDs, OwnerID: e.OwnerID, Created: "2024-01-02T03:04:05.000Z"})
	}
	writeEC2XML(w, resp)
}

func anyGlob(patterns []string, s string) bool {
	for _, p := range patterns {
		if globMatch(p, s) {
			return true
		}
	}
	return false
}

func writeEC2XML(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, xml.Header)
	_ = xml.NewEncoder(w).Encode(v)
}
