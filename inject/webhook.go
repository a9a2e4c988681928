package inject

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"time"

	"go.uber.org/zap"
	"gomodules.xyz/jsonpatch/v2"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// MaxReviewBytes bounds an AdmissionReview body: a pod is at most etcd's
// 1.5 MiB, and a CREATE carries no oldObject.
const MaxReviewBytes = 3 << 20

// NamespaceGetter reads a namespace's labels (from the API server).
type NamespaceGetter interface {
	Namespace(ctx context.Context, name string) (Namespace, error)
}

// Handler serves the mutating webhook (POST, AdmissionReview v1).
type Handler struct {
	Injector   *Injector
	Namespaces NamespaceGetter
	Log        *zap.Logger
	Metrics    *Metrics // optional
}

// ServeHTTP answers one AdmissionReview.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	if r.Method != http.MethodPost {
		http.Error(w, "POST an AdmissionReview", http.StatusMethodNotAllowed)
		return
	}
	if ct, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || ct != "application/json" {
		http.Error(w, "Content-Type must be application/json", http.StatusUnsupportedMediaType)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxReviewBytes+1))
	if err != nil {
		http.Error(w, "reading the request: "+err.Error(), http.StatusBadRequest)
		return
	}
	if len(body) > MaxReviewBytes {
		http.Error(w, fmt.Sprintf("AdmissionReview larger than %d bytes", MaxReviewBytes), http.StatusRequestEntityTooLarge)
		return
	}
	review, err := DecodeReview(body)
	if err != nil {
		h.observe(OutcomeBadInput, start)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	resp, outcome := h.Review(r.Context(), review.Request)
	h.observe(outcome, start)
	out := admissionv1.AdmissionReview{TypeMeta: review.TypeMeta, Response: resp}
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(&out); err != nil {
		h.log().Warn("writing the AdmissionReview response", zap.Error(err))
	}
}

func (h *Handler) log() *zap.Logger {
	if h.Log == nil {
		return zap.NewNop()
	}
	return h.Log
}

func (h *Handler) observe(o Outcome, start time.Time) {
	if h.Metrics != nil {
		h.Metrics.observe(o, time.Since(start))
	}
}

// DecodeReview parses an AdmissionReview v1 request.
func DecodeReview(body []byte) (*admissionv1.AdmissionReview, error) {
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &review); err != nil {
		return nil, fmt.Errorf("AdmissionReview: %w", err)
	}
	if review.APIVersion != admissionv1.SchemeGroupVersion.String() || review.Kind != "AdmissionReview" {
		return nil, fmt.Errorf("AdmissionReview: apiVersion %q kind %q: want admission.k8s.io/v1 AdmissionReview", review.APIVersion, review.Kind)
	}
	if review.Request == nil {
		return nil, errors.New("AdmissionReview: no request")
	}
	if review.Request.UID == "" {
		return nil, errors.New("AdmissionReview: request.uid is empty")
	}
	return &review, nil
}

// DecodePod parses the pod of an admission request.
func DecodePod(raw []byte) (*corev1.Pod, error) {
	if len(raw) == 0 {
		return nil, errors.New("request.object is empty")
	}
	var pod corev1.Pod
	if err := json.Unmarshal(raw, &pod); err != nil {
		return nil, fmt.Errorf("request.object: %w", err)
	}
	if pod.Kind != "" && (pod.Kind != "Pod" || pod.APIVersion != "v1") {
		return nil, fmt.Errorf("request.object is %s %s, not a v1 Pod", pod.APIVersion, pod.Kind)
	}
	return &pod, nil
}

// Review decides one admission request. Only pod CREATEs in enrolled
// namespaces are changed; anything the injector cannot decide is denied.
func (h *Handler) Review(ctx context.Context, req *admissionv1.AdmissionRequest) (*admissionv1.AdmissionResponse, Outcome) {
	resp := &admissionv1.AdmissionResponse{UID: req.UID, Allowed: true}
	log := h.log().With(zap.String("uid", string(req.UID)), zap.String("namespace", req.Namespace),
		zap.String("operation", string(req.Operation)))
	if req.Kind.Group != "" || req.Kind.Kind != "Pod" || req.SubResource != "" || req.Operation != admissionv1.Create {
		log.Debug("not a pod CREATE; allowed unchanged", zap.String("kind", req.Kind.Kind), zap.String("subresource", req.SubResource))
		return resp, OutcomeSkipped
	}
	deny := func(code int32, o Outcome, msg string) (*admissionv1.AdmissionResponse, Outcome) {
		resp.Allowed = false
		resp.Result = &metav1.Status{Status: metav1.StatusFailure, Code: code, Message: "warden injector: " + msg}
		return resp, o
	}
	pod, err := DecodePod(req.Object.Raw)
	if err != nil {
		log.Warn("undecodable pod", zap.Error(err))
		return deny(http.StatusBadRequest, OutcomeBadInput, err.Error())
	}
	log = log.With(zap.String("pod", podName(pod, req)))
	ns, err := h.Namespaces.Namespace(ctx, req.Namespace)
	if err != nil {
		log.Error("namespace lookup failed; denying", zap.Error(err))
		return deny(http.StatusInternalServerError, OutcomeError, fmt.Sprintf("cannot read namespace %q to decide on injection: %v", req.Namespace, err))
	}
	mutated, outcome, err := h.Injector.Mutate(pod, ns)
	var de *DeniedError
	switch {
	case errors.As(err, &de):
		log.Info("pod denied", zap.String("reason", de.Reason))
		return deny(http.StatusForbidden, OutcomeDenied, de.Reason)
	case err != nil:
		log.Error("injection failed; denying", zap.Error(err))
		return deny(http.StatusInternalServerError, OutcomeError, err.Error())
	case outcome != OutcomeInjected:
		log.Info("pod admitted unchanged", zap.String("outcome", string(outcome)))
		return resp, outcome
	}
	ops, err := Patch(pod, mutated)
	if err != nil {
		log.Error("computing the patch failed; denying", zap.Error(err))
		return deny(http.StatusInternalServerError, OutcomeError, err.Error())
	}
	if len(ops) == 0 {
		log.Info("pod already carries the canonical sidecar", zap.String("mode", modeOf(mutated)))
		return resp, OutcomeUnchanged
	}
	patch, err := json.Marshal(ops)
	if err != nil {
		return deny(http.StatusInternalServerError, OutcomeError, err.Error())
	}
	pt := admissionv1.PatchTypeJSONPatch
	resp.Patch, resp.PatchType = patch, &pt
	log.Info("sidecar injected", zap.String("mode", modeOf(mutated)), zap.Strings("patched", opPaths(ops)))
	return resp, OutcomeInjected
}

// Patch is the JSON patch from original to mutated: a diff of their JSON.
func Patch(original, mutated *corev1.Pod) ([]jsonpatch.Operation, error) {
	a, err := json.Marshal(original)
	if err != nil {
		return nil, fmt.Errorf("encode original pod: %w", err)
	}
	b, err := json.Marshal(mutated)
	if err != nil {
		return nil, fmt.Errorf("encode mutated pod: %w", err)
	}
	ops, err := jsonpatch.CreatePatch(a, b)
	if err != nil {
		return nil, fmt.Errorf("diff pods: %w", err)
	}
	return ops, nil
}

func modeOf(p *corev1.Pod) string {
	if m := p.Annotations[AnnotationMode]; m != "" {
		return m
	}
	return ModeEndpoint
}

func podName(p *corev1.Pod, req *admissionv1.AdmissionRequest) string {
	switch {
	case p.Name != "":
		return p.Name
	case req.Name != "":
		return req.Name
	case p.GenerateName != "":
		return p.GenerateName + "*"
	}
	return ""
}

// opPaths names what a patch touches (paths only: values may hold config).
func opPaths(ops []jsonpatch.Operation) []string {
	out := make([]string, len(ops))
	for i, o := range ops {
		out[i] = o.Operation + " " + o.Path
	}
	return out
}
