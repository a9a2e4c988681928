package main

import (
	"context"
	"encoding/xml"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/warden-egress/warden/bedrock/bedrocktest"
	"github.com/warden-egress/warden/inject"
	"github.com/warden-egress/warden/internal/kubetest"
)

// Warden's AWS credentials as the injector wires them: the sidecar runs
// with the AWS variables of the injected warden container, exactly as the
// injector writes them (AWS_ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE,
// AWS_ROLE_SESSION_NAME, AWS_STS_REGIONAL_ENDPOINTS, AWS_REGION,
// AWS_EC2_METADATA_DISABLED), no static key, and a token the real
// kube-apiserver issued for Warden's audience, bound to the stored pod
// (what the kubelet writes into warden-token; no kubelet runs here). The
// only addition is AWS_ENDPOINT_URL_STS: STS is not on this machine. A
// stand-in STS answers AssumeRoleWithWebIdentity only for a token the API
// server's TokenReview authenticates for Warden's audience as the pod's
// service account, and only for the injector's role: the Bedrock emulator
// then sees Warden's upstream call signed with the credentials STS issued.
func TestInjectedSidecarWebIdentity(t *testing.T) {
	c := kubetest.Shared(t)
	ctx := context.Background()
	data, err := os.ReadFile(injectorConfigs[0])
	if err != nil {
		t.Fatal(err)
	}
	icfg, err := inject.ParseConfig(data)
	if err != nil {
		t.Fatal(err)
	}
	in, err := inject.New(icfg, injectorVersion())
	if err != nil {
		t.Fatal(err)
	}
	ns := c.Namespace(t)
	c.ServiceAccount(t, ns, "checkout")
	pod, _, err := in.Mutate(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "checkout"},
		Spec: corev1.PodSpec{ServiceAccountName: "checkout", Containers: []corev1.Container{{Name: "app", Image: "app:1"}}}},
		inject.Namespace{Name: ns, Labels: map[string]string{inject.LabelEnrolled: "true"}})
	if err != nil {
		t.Fatal(err)
	}
	stored, err := c.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var warden *corev1.Container
	for i := range stored.Spec.InitContainers {
		if stored.Spec.InitContainers[i].Name == inject.ContainerName {
			warden = &stored.Spec.InitContainers[i]
		}
	}
	if warden == nil {
		t.Fatal("no warden container in the stored pod")
	}
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(c.Token(t, ns, "checkout", icfg.Audience, stored)), 0o600); err != nil {
		t.Fatal(err)
	}

	const key, secret, session = "ASIAWARDENWEBIDENT01", "web-identity-secret", "web-identity-session-token"
	var (
		mu    sync.Mutex
		calls []url.Values
	)
	sts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		mu.Lock()
		calls = append(calls, r.PostForm)
		mu.Unlock()
		fail := func(status int, code string) {
			w.Header().Set("Content-Type", "text/xml")
			w.WriteHeader(status)
			_, _ = w.Write([]byte(`<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>` + code + `</Code><Message>` + code + `</Message></Error></ErrorResponse>`))
		}
		f := r.PostForm
		if f.Get("Action") != "AssumeRoleWithWebIdentity" || f.Get("Version") != "2011-06-15" {
			fail(http.StatusBadRequest, "InvalidAction")
			return
		}
		// The trust policy of docs/kubernetes.md: audience and subject.
		tr, err := c.Client.AuthenticationV1().TokenReviews().Create(r.Context(), &authenticationv1.TokenReview{
			Spec: authenticationv1.TokenReviewSpec{Token: f.Get("WebIdentityToken"), Audiences: []string{icfg.Audience}}}, metav1.CreateOptions{})
		if err != nil || !tr.Status.Authenticated || !slices.Contains(tr.Status.Audiences, icfg.Audience) ||
			tr.Status.User.Username != "system:serviceaccount:"+ns+":checkout" {
			fail(http.StatusBadRequest, "InvalidIdentityToken")
			return
		}
		if f.Get("RoleArn") != icfg.RoleARN {
			fail(http.StatusForbidden, "AccessDenied")
			return
		}
		type creds struct {
			AccessKeyID     string `xml:"AccessKeyId"`
			SecretAccessKey string `xml:"SecretAccessKey"`
			SessionToken    string `xml:"SessionToken"`
			Expiration      string `xml:"Expiration"`
		}
		type resp struct {
			XMLName xml.Name `xml:"AssumeRoleWithWebIdentityResponse"`
			XMLNS   string   `xml:"xmlns,attr"`
			Creds   creds    `xml:"AssumeRoleWithWebIdentityResult>Credentials"`
			Subject string   `xml:"AssumeRoleWithWebIdentityResult>SubjectFromWebIdentityToken"`
		}
		w.Header().Set("Content-Type", "text/xml")
		_ = xml.NewEncoder(w).Encode(resp{XMLNS: "https://sts.amazonaws.com/doc/2011-06-15/", Subject: tr.Status.User.Username,
			Creds: creds{AccessKeyID: key, SecretAccessKey: secret, SessionToken: session, Expiration: time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}})
	}))
	t.Cleanup(sts.Close)
	emu := bedrocktest.NewServer(bedrocktest.Config{Credentials: map[string]string{key: secret}})
	t.Cleanup(emu.Close)

	// No static key, profile or instance role to fall back on.
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
		"AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", inject.EnvAWSEndpoint} {
		t.Setenv(k, "")
	}
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	seen := map[string]bool{}
	for _, e := range warden.Env {
		switch {
		case e.ValueFrom != nil || e.Name == inject.ConfigEnv:
			// fieldRefs need a kubelet; WARDEN_CONFIG is the rendered
			// configuration startInjectedSidecar moves.
		case e.Name == "AWS_WEB_IDENTITY_TOKEN_FILE":
			if e.Value != inject.TokenFile {
				t.Fatalf("AWS_WEB_IDENTITY_TOKEN_FILE %q, want the warden-token file %s", e.Value, inject.TokenFile)
			}
			t.Setenv(e.Name, tokenFile)
		default:
			t.Setenv(e.Name, e.Value)
		}
		seen[e.Name] = true
	}
	for _, k := range []string{"AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_SESSION_NAME", "AWS_REGION", "AWS_EC2_METADATA_DISABLED"} {
		if !seen[k] {
			t.Fatalf("the injected warden container has no %s", k)
		}
	}
	t.Setenv("AWS_ENDPOINT_URL_STS", sts.URL)
	sc := startInjectedSidecar(t, inject.ModeEndpoint, emu.URL)

	client := bedrockruntime.New(bedrockruntime.Options{Region: "us-east-1", BaseEndpoint: aws.String("http://" + sc.listen),
		Credentials: credentials.NewStaticCredentialsProvider("AKIAAPPPLACEHOLDER01", "placeholder", ""), RetryMaxAttempts: 1})
	if _, err := client.Converse(ctx, &bedrockruntime.ConverseInput{ModelId: aws.String("anthropic.claude-3-5-haiku-20241022-v1:0"),
		Messages: []types.Message{{Role: types.ConversationRoleUser, Content: []types.ContentBlock{&types.ContentBlockMemberText{Value: "hi"}}}}}); err != nil {
		t.Fatalf("Converse through the sidecar: %v\n%s", err, sc.stderr.String())
	}
	ec := emu.Calls()
	if len(ec) != 1 || !ec[0].SignatureOK || ec[0].AccessKeyID != key {
		t.Fatalf("the emulator saw %+v; want one call signed with the key STS issued for the web identity", ec)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(calls) == 0 {
		t.Fatal("the sidecar never called STS")
	}
	if got, want := calls[0].Get("RoleSessionName"), "warden-"+ns; got != want {
		t.Errorf("RoleSessionName %q, want %q", got, want)
	}
}
