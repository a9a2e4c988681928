package admission

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestLaterWebhookUndoesInjection: validation runs after every mutating
// webhook, so a webhook that strips the sidecar after the injector (here, on
// a pod that arrives already canonical) cannot get a pod without Warden
// stored. The webhook is a real HTTPS server on loopback that the API server
// calls.
func TestLaterWebhookUndoesInjection(t *testing.T) {
	f := installed(t)
	ctx := context.Background()
	var calls atomic.Int64
	srv := stripWebhook(t, &calls)
	ns := f.namespace(t, nsOpts{enrolled: true, extraLabels: map[string]string{"kt-strip": "true"}})

	none := admissionregistrationv1.SideEffectClassNone
	fail := admissionregistrationv1.Fail
	url := srv.URL + "/strip"
	cfg := &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "kt-strip"},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name:                    "strip.kt.warden-egress.io",
			ClientConfig:            admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: srv.caPEM},
			Rules:                   []admissionregistrationv1.RuleWithOperations{{Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create}, Rule: admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}}}},
			NamespaceSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"kt-strip": "true"}},
			SideEffects:             &none,
			FailurePolicy:           &fail,
			AdmissionReviewVersions: []string{"v1"},
			TimeoutSeconds:          ptr(int32(5)),
		}},
	}
	if _, err := f.c.Client.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, cfg, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = f.c.Client.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(context.Background(), cfg.Name, metav1.DeleteOptions{})
	})

	team := f.as(t, teamUser)
	// The configuration reaches the API server's webhook dispatcher a
	// moment after it is stored: until then the canonical pod is allowed.
	deadline := time.Now().Add(30 * time.Second)
	for calls.Load() == 0 {
		_, err := team.CoreV1().Pods(ns).Create(ctx, f.canonicalPod(ns, "probe"), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil && !deniedBy(err, PolicyPods) {
			t.Fatalf("dry run: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatal("the stripping webhook was never called")
		}
		time.Sleep(200 * time.Millisecond)
	}
	_, err := team.CoreV1().Pods(ns).Create(ctx, f.canonicalPod(ns, "stripped"), metav1.CreateOptions{})
	wantDenied(t, err, PolicyPods, "must run the warden sidecar")
	if _, err := f.c.Client.CoreV1().Pods(ns).Get(ctx, "stripped", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("a pod was stored: %v", err)
	}
}

type tlsServer struct {
	*httptest.Server
	caPEM []byte
}

// stripWebhook serves a mutating webhook that removes every init container
// (the warden sidecar with them), over TLS for 127.0.0.1.
func stripWebhook(t *testing.T, calls *atomic.Int64) *tlsServer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "kt-strip"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var review admissionv1.AdmissionReview
		if err := json.NewDecoder(r.Body).Decode(&review); err != nil || review.Request == nil {
			http.Error(w, "bad AdmissionReview", http.StatusBadRequest)
			return
		}
		calls.Add(1)
		pt := admissionv1.PatchTypeJSONPatch
		review.Response = &admissionv1.AdmissionResponse{
			UID:       review.Request.UID,
			Allowed:   true,
			PatchType: &pt,
			Patch:     []byte(`[{"op":"remove","path":"/spec/initContainers"}]`),
		}
		review.Request = nil
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(&review)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS12}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return &tlsServer{Server: srv, caPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}
