package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"
	"go.uber.org/zap"

	"github.com/warden-egress/warden/audit"
	"github.com/warden-egress/warden/bedrock/bedrocktest"
	"github.com/warden-egress/warden/config"
	"github.com/warden-egress/warden/proxy"
)

//go:embed demo.yaml
var demoPolicy string

// Warden's own key: the only one the emulator (like a VPC endpoint policy) accepts.
const (
	demoWardenKey    = "AKIAWARDENDEMO000001"
	demoWardenSecret = "warden-demo-secret-key"
)

// cmdDemo runs the whole product offline: a Bedrock emulator, Warden with an
// example policy in front of it, and the real Go SDK driving allowed and
// denied calls through Warden.
func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("warden-demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	showPolicy := fs.Bool("policy", false, "print the example policy and exit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *showPolicy {
		fmt.Fprint(stdout, demoPolicy)
		return nil
	}
	emu := bedrocktest.NewServer(bedrocktest.Config{
		Region:      "us-east-1",
		Credentials: map[string]string{demoWardenKey: demoWardenSecret},
		Profiles: map[string]string{
			"arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/chatbotprod1": "anthropic.claude-3-5-haiku-20241022-v1:0",
		},
	})
	defer emu.Close()
	// The control plane tells Warden which foundation model the application
	// inference profile runs, so the policy can judge it.
	cp := bedrocktest.NewControlPlane(bedrocktest.ControlPlaneConfig{
		Credentials: map[string]string{demoWardenKey: demoWardenSecret},
		InferenceProfiles: map[string]bedrocktest.InferenceProfile{
			"arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/chatbotprod1": {
				Name: "chatbot-prod", Type: "APPLICATION",
				Models: []string{"arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-5-haiku-20241022-v1:0"},
			},
		},
	})
	defer cp.Close()

	out := &lockedWriter{w: stdout}
	fmt.Fprintf(out, "Bedrock emulator on %s (accepts only Warden's key %s)\n", emu.URL, demoWardenKey)
	policy := strings.NewReplacer("${EMULATOR_URL}", emu.URL, "${CONTROL_PLANE_URL}", cp.URL).Replace(demoPolicy)
	cfg, err := config.ParseConfig([]byte(policy))
	if err != nil {
		return fmt.Errorf("example policy: %w", err)
	}
	// Audit records go through the production pipeline (an in-memory spool,
	// the hash chain) to a sink that collects the lines, printed under the
	// call they describe.
	records := make(chan struct{}, 16)
	auditBuf := &lockedBuffer{}
	aw, err := audit.Open(ctx, audit.Options{Instance: "demo", Sinks: []audit.Sink{&demoSink{w: auditBuf, done: records}},
		BatchWait: 10 * time.Millisecond})
	if err != nil {
		return fmt.Errorf("audit pipeline: %w", err)
	}
	defer func() { _ = aw.Close() }() // the demo has printed its lines; a close error changes nothing
	warden, stopWarden, err := startDemoWarden(ctx, cfg, aw)
	if err != nil {
		return err
	}
	defer stopWarden()
	endpoint := warden.endpoint
	fmt.Fprintf(out, "Warden endpoint on %s; the app sets AWS_ENDPOINT_URL_BEDROCK_RUNTIME=%s\n", endpoint, endpoint)
	fmt.Fprintf(out, "Workload identity (static sidecar tags): %v\n\n", cfg.Identity.Static)

	// The app's own credentials: Warden strips them and signs with its own, so
	// they could be anything. The emulator would reject them if they got through.
	client := bedrockruntime.New(bedrockruntime.Options{
		Region:           "us-east-1",
		BaseEndpoint:     aws.String(endpoint),
		Credentials:      credentials.NewStaticCredentialsProvider("AKIAAPPKEYNOTTRUSTED", "app-secret", ""),
		RetryMaxAttempts: 1,
		// Loopback answers fast enough to hit a client-side race between
		// smithy-go and net/http; see bedrocktest.BufferedClient.
		HTTPClient: bedrocktest.BufferedClient(nil),
	})
	msg := func(text string) []types.Message {
		return []types.Message{{Role: types.ConversationRoleUser, Content: []types.ContentBlock{&types.ContentBlockMemberText{Value: text}}}}
	}
	wait := func() {
		select {
		case <-records:
		case <-time.After(2 * time.Second):
		}
		for _, line := range strings.Split(strings.TrimSpace(auditBuf.take()), "\n") {
			fmt.Fprintf(out, "       audit %s\n", line)
		}
		fmt.Fprintln(out)
	}
	report := func(what string, text string, err error) {
		var ade *types.AccessDeniedException
		switch {
		case err == nil:
			fmt.Fprintf(out, "ALLOW  %s\n       model said: %q\n", what, text)
		case errors.As(err, &ade):
			fmt.Fprintf(out, "DENY   %s\n       AccessDeniedException: %s\n", what, ade.ErrorMessage())
		default:
			fmt.Fprintf(out, "ERROR  %s\n       %v\n", what, err)
		}
		wait()
	}

	const haiku = "anthropic.claude-3-5-haiku-20241022-v1:0"
	conv, err := client.Converse(ctx, &bedrockruntime.ConverseInput{ModelId: aws.String(haiku), Messages: msg("Summarise our refund policy.")})
	report("Converse "+haiku, converseText(conv), err)

	text, err := converseStream(ctx, client, "us.anthropic.claude-3-5-haiku-20241022-v1:0", msg("Stream a greeting."))
	report("ConverseStream us.anthropic.claude-3-5-haiku-20241022-v1:0 (system inference profile)", text, err)

	profile := "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/chatbotprod1"
	conv, err = client.Converse(ctx, &bedrockruntime.ConverseInput{ModelId: aws.String(profile), Messages: msg("Hello via an application profile.")})
	report("Converse "+profile, converseText(conv), err)

	const opus = "anthropic.claude-3-opus-20240229-v1:0"
	_, err = client.Converse(ctx, &bedrockruntime.ConverseInput{ModelId: aws.String(opus), Messages: msg("Write me a novel.")})
	report("Converse "+opus+" (not in allow.models)", "", err)

	_, err = client.InvokeModel(ctx, &bedrockruntime.InvokeModelInput{ModelId: aws.String(haiku), ContentType: aws.String("application/json"),
		Body: []byte(`{"anthropic_version":"bedrock-2023-05-31","max_tokens":64,"messages":[{"role":"user","content":"hi"}]}`)})
	report("InvokeModel "+haiku+" (not in allow.operations)", "", err)

	// A second sidecar, for a workload the policy does not know.
	other := *cfg
	other.Identity.Static = map[string]string{"app": "reporting", "env": "prod"}
	other.Listen.Proxy = ""
	otherWarden, stopOther, err := startDemoWarden(ctx, &other, aw)
	if err != nil {
		return err
	}
	defer stopOther()
	otherEndpoint := otherWarden.endpoint
	fmt.Fprintf(out, "A second sidecar on %s for a workload tagged %v:\n", otherEndpoint, other.Identity.Static)
	otherClient := bedrockruntime.New(bedrockruntime.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(otherEndpoint), RetryMaxAttempts: 1,
		HTTPClient:  bedrocktest.BufferedClient(nil),
		Credentials: credentials.NewStaticCredentialsProvider("AKIAAPPKEYNOTTRUSTED", "app-secret", ""),
	})
	_, err = otherClient.Converse(ctx, &bedrockruntime.ConverseInput{ModelId: aws.String(haiku), Messages: msg("Quarterly numbers, please.")})
	report("Converse "+haiku+" (workload no app selects)", "", err)

	// Forward-proxy mode: an app that cannot set the endpoint variable sets
	// HTTPS_PROXY and trusts Warden's name-constrained CA instead; its SDK
	// keeps talking to the real host name.
	fmt.Fprintf(out, "Forward-proxy mode on %s: the app sets HTTPS_PROXY=%s and trusts Warden's CA (AWS_CA_BUNDLE);\n"+
		"its SDK keeps the real endpoint https://bedrock-runtime.us-east-1.amazonaws.com.\n", warden.proxy, warden.proxy)
	pool := x509.NewCertPool()
	pool.AddCert(warden.srv.CA().Certificate())
	proxyURL, _ := url.Parse(warden.proxy)
	proxyTransport := &http.Transport{Proxy: http.ProxyURL(proxyURL), TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}
	proxied := bedrockruntime.New(bedrockruntime.Options{
		Region: "us-east-1", RetryMaxAttempts: 1,
		HTTPClient:  bedrocktest.BufferedClient(&http.Client{Transport: proxyTransport}),
		Credentials: credentials.NewStaticCredentialsProvider("AKIAAPPKEYNOTTRUSTED", "app-secret", ""),
	})
	conv, err = proxied.Converse(ctx, &bedrockruntime.ConverseInput{ModelId: aws.String(haiku), Messages: msg("Hello through the proxy.")})
	report("Converse "+haiku+" via HTTPS_PROXY (intercepted, re-signed)", converseText(conv), err)
	sts, err := (&http.Client{Transport: proxyTransport, Timeout: 5 * time.Second}).Get("https://sts.us-east-1.amazonaws.com/")
	if err == nil {
		_ = sts.Body.Close()
		fmt.Fprintf(out, "ERROR  CONNECT to sts.us-east-1.amazonaws.com was not refused (%s)\n\n", sts.Status)
	} else {
		fmt.Fprintf(out, "REFUSE CONNECT sts.us-east-1.amazonaws.com:443 (not Bedrock, not in egress.tunnel)\n       %v\n\n", err)
	}

	calls := emu.Calls()
	signed := 0
	for _, c := range calls {
		if c.SignatureOK && c.AccessKeyID == demoWardenKey {
			signed++
		}
	}
	fmt.Fprintf(out, "The emulator received %d calls, %d of them signed by Warden's key; denied calls never left Warden.\n", len(calls), signed)
	return nil
}

func converseText(out *bedrockruntime.ConverseOutput) string {
	if out == nil {
		return ""
	}
	m, ok := out.Output.(*types.ConverseOutputMemberMessage)
	if !ok {
		return ""
	}
	var b strings.Builder
	for _, c := range m.Value.Content {
		if t, ok := c.(*types.ContentBlockMemberText); ok {
			b.WriteString(t.Value)
		}
	}
	return b.String()
}

func converseStream(ctx context.Context, client *bedrockruntime.Client, model string, msgs []types.Message) (string, error) {
	out, err := client.ConverseStream(ctx, &bedrockruntime.ConverseStreamInput{ModelId: aws.String(model), Messages: msgs})
	if err != nil {
		return "", err
	}
	stream := out.GetStream()
	defer func() { _ = stream.Close() }()
	var b strings.Builder
	for ev := range stream.Events() {
		if d, ok := ev.(*types.ConverseStreamOutputMemberContentBlockDelta); ok {
			if t, ok := d.Value.Delta.(*types.ContentBlockDeltaMemberText); ok {
				b.WriteString(t.Value)
			}
		}
	}
	return b.String(), stream.Err()
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lockedBuffer) take() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.buf.String()
	l.buf.Reset()
	return s
}

// demoSink collects the call records the pipeline delivers (checkpoints
// are left out) and tells the demo when one has arrived, so output stays in
// call order.
type demoSink struct {
	w    io.Writer
	done chan struct{}
}

func (s *demoSink) Name() string { return "demo" }

func (s *demoSink) Write(_ context.Context, batch []audit.Entry) error {
	for _, e := range batch {
		if _, err := audit.DecodeRecord(e.Line); err != nil {
			continue // a checkpoint
		}
		if _, err := fmt.Fprintf(s.w, "%s\n", e.Line); err != nil {
			return err
		}
		select {
		case s.done <- struct{}{}:
		default:
		}
	}
	return nil
}

func (s *demoSink) Close() error { return nil }

// startDemoWarden runs one Warden on free loopback ports: the endpoint
// listener, and the forward proxy when the config names one.
func startDemoWarden(ctx context.Context, cfg *config.Config, aw audit.Writer) (demoWarden, func(), error) {
	srv, err := proxy.New(ctx, proxy.Options{
		Config:      cfg,
		Credentials: credentials.NewStaticCredentialsProvider(demoWardenKey, demoWardenSecret, ""),
		Audit:       nopCloser{aw},
		Logger:      zap.NewNop(),
	})
	if err != nil {
		return demoWarden{}, nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return demoWarden{}, nil, err
	}
	go func() { _ = srv.ServeEndpoint(ln, nil) }()
	w := demoWarden{endpoint: "http://" + ln.Addr().String(), srv: srv}
	if cfg.Listen.Proxy != "" {
		pln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			_ = ln.Close()
			return demoWarden{}, nil, err
		}
		go func() { _ = srv.ServeProxy(pln) }()
		w.proxy = "http://" + pln.Addr().String()
	}
	stop := func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}
	return w, stop, nil
}

type demoWarden struct {
	endpoint, proxy string // URLs
	srv             *proxy.Server
}

// nopCloser shares one audit writer between two servers.
type nopCloser struct{ audit.Writer }

func (nopCloser) Close() error { return nil }
