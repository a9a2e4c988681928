package proxy_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/warden-egress/warden/audit"
	"github.com/warden-egress/warden/audit/audittest"
)

// A client no app selects floods Warden with calls it denies while the
// audit sinks are behind. Before, its denial records filled the spool and
// on_full: deny then refused the legitimate app's calls with 503; now the
// unidentified callers hold only their share of the spool, and every
// denied call is still accounted for: in a record's count, or counted as
// dropped.
func TestDenialFloodDoesNotStarveApps(t *testing.T) {
	sink := &audittest.Sink{Hold: make(chan struct{})} // the sinks are behind
	released := false
	release := func() {
		if !released {
			released = true
			close(sink.Hold)
		}
	}
	t.Cleanup(release)
	reg := prometheus.NewRegistry()
	p, err := audit.Open(context.Background(), audit.Options{Dir: t.TempDir(), Instance: "warden-test", Sinks: []audit.Sink{sink},
		SegmentBytes: 64 << 10, MaxBytes: 256 << 10, BatchWait: time.Millisecond, Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	emu := newEmulator(t)
	e := &env{emu: emu, cp: newControlPlane(t), writer: p}
	policy := strings.ReplaceAll(basePolicy, "${UPSTREAM}", emu.URL)
	e.start(t, strings.ReplaceAll(policy, "${CONTROL_PLANE}", e.cp.URL), "", nil)
	c := e.client(t, nil)
	// Each flooding source is its own loopback address (127.0.0.0/8 is all
	// loopback): repeats of one source fold into one record per second, so
	// it takes many sources to fill a share.
	clients := map[int]*http.Client{}
	source := func(n int) *http.Client {
		if clients[n] == nil {
			d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, byte(n/250), byte(2+n%250))}}
			clients[n] = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DialContext: d.DialContext}}
			t.Cleanup(clients[n].CloseIdleConnections)
		}
		return clients[n]
	}
	deny := func(from int, path string) {
		t.Helper()
		resp, err := source(from).Post(e.endpoint+path, "application/json", strings.NewReader(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("%s: status %d, want 403", path, resp.StatusCode)
		}
	}
	const rounds, distinct, same, appCalls = 8, 200, 30, 2
	pad := strings.Repeat("x", 100)
	denied, allowed := 0, 0
	for round := range rounds {
		// Unknown routes: no app selects them. Many sources, and one
		// source repeating itself (folded).
		for i := range distinct {
			deny(i, fmt.Sprintf("/flood-%d-%d/%s", round, i, pad))
			denied++
		}
		for i := range same {
			deny(distinct, fmt.Sprintf("/flood-same-%d/%s", i, pad))
			denied++
		}
		for i := range appCalls {
			_, err := c.Converse(context.Background(), &bedrockruntime.ConverseInput{ModelId: aws.String(haiku), Messages: userMsg("hi")})
			if err != nil {
				t.Fatalf("round %d, app call %d after %d denials: %v; want it forwarded: the callers no app selects hold only their share of the spool",
					round, i, denied, err)
			}
			allowed++
		}
	}
	release()
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	lines := sink.Lines()
	v := audit.NewVerifier(audit.VerifyOptions{Keys: []string{p.PublicKey()}})
	calls := map[string]int{}
	for _, l := range lines {
		v.Add("sink", []byte(l))
		var j struct {
			Kind  string `json:"kind"`
			App   string `json:"app"`
			Count int    `json:"count"`
		}
		if err := json.Unmarshal([]byte(l), &j); err != nil {
			t.Fatal(err)
		}
		if j.Kind == "" {
			calls[j.App] += max(j.Count, 1)
		}
	}
	if res := v.Finish(); len(res.Problems) != 0 {
		t.Fatalf("chain: %v", res.Problems)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	metric := func(name string) int {
		sum := 0
		for _, mf := range mfs {
			if mf.GetName() == name {
				for _, m := range mf.GetMetric() {
					sum += int(m.GetCounter().GetValue())
				}
			}
		}
		return sum
	}
	dropped, folded := metric("warden_audit_dropped_total"), metric("warden_audit_denials_aggregated_total")
	if dropped == 0 || folded == 0 {
		t.Errorf("%d denied calls counted as dropped and %d folded: want both (the flood outgrows its share; one source repeats itself)", dropped, folded)
	}
	if calls["chatbot-prod"] != allowed {
		t.Errorf("%d app calls recorded, want %d", calls["chatbot-prod"], allowed)
	}
	if got := calls[""] + dropped; got != denied {
		t.Errorf("denied calls: %d in records + %d counted as dropped = %d, want the %d made", calls[""], dropped, got, denied)
	}
	t.Logf("%d denied calls: %d in records, %d counted as dropped; %d app calls", denied, calls[""], dropped, allowed)
}

// An app whose own denials fill its share gets the spool-full answer for
// its next call, naming its share; the other callers' records still go in.
func TestAppShareFullRefusesOnlyThatApp(t *testing.T) {
	sink := &audittest.Sink{Hold: make(chan struct{})}
	p, err := audit.Open(context.Background(), audit.Options{Dir: t.TempDir(), Instance: "warden-test", Sinks: []audit.Sink{sink},
		SegmentBytes: 64 << 10, MaxBytes: 256 << 10, BatchWait: time.Millisecond, ShareApp: 0.05})
	if err != nil {
		t.Fatal(err)
	}
	emu := newEmulator(t)
	e := &env{emu: emu, cp: newControlPlane(t), writer: p}
	policy := strings.ReplaceAll(basePolicy, "${UPSTREAM}", emu.URL)
	e.start(t, strings.ReplaceAll(policy, "${CONTROL_PLANE}", e.cp.URL), "", nil)
	c := e.client(t, nil)
	ctx := context.Background()
	var refused error
	for i := 0; i < 200 && refused == nil; i++ {
		// Models the app may not use, each its own reason.
		_, err := c.Converse(ctx, &bedrockruntime.ConverseInput{ModelId: aws.String(fmt.Sprintf("anthropic.claude-3-opus-%d-v1:0", i)), Messages: userMsg("hi")})
		if err == nil {
			t.Fatal("a model the app may not use went through")
		}
		_, err = c.Converse(ctx, &bedrockruntime.ConverseInput{ModelId: aws.String(haiku), Messages: userMsg("hi")})
		refused = err
	}
	var unavailable *types.ServiceUnavailableException
	if !errors.As(refused, &unavailable) || !strings.Contains(refused.Error(), "audit spool is full for app chatbot-prod") {
		t.Fatalf("after the app filled its share: %v, want ServiceUnavailableException naming the app", refused)
	}
	resp, err := http.Post(e.endpoint+"/unselected-after-app-share", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	close(sink.Hold)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, l := range sink.Lines() {
		found = found || strings.Contains(l, "unselected-after-app-share")
	}
	if !found {
		t.Error("the unselected caller's denial was not recorded: another share filled up its room")
	}
}
