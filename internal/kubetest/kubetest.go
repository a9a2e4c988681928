// Package kubetest runs a real etcd and kube-apiserver on loopback for tests:
// no kubelet, scheduler or controller manager, just the API (so pod status,
// service accounts and namespaces' contents are whatever a test writes).
//
// The binaries come from scripts/kube-assets (built from tools/kube), found
// through the WARDEN_KUBE_ASSETS environment variable. When it is unset or
// the binaries are missing, tests that need the cluster skip — unless CI=true
// or WARDEN_REQUIRE_KUBE=1, where they fail.
//
// One cluster serves a whole test binary: call Shared from tests and Main
// from TestMain, which stops it after the tests ran.
//
//	func TestMain(m *testing.M) { os.Exit(kubetest.Main(m)) }
//
//	func TestX(t *testing.T) {
//		c := kubetest.Shared(t)
//		ns := c.Namespace(t) // a fresh namespace, deleted at cleanup
//		…
//	}
package kubetest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// EnvAssets names the directory holding the kube-apiserver and etcd binaries.
const EnvAssets = "WARDEN_KUBE_ASSETS"

// Issuer is the service-account token issuer the cluster signs with.
const Issuer = "https://kubernetes.default.svc.cluster.local"

// Cluster is a running etcd + kube-apiserver.
type Cluster struct {
	// Config is an admin (system:masters) client config.
	Config *rest.Config
	// Client is an admin clientset.
	Client kubernetes.Interface
	// Kubeconfig is a kubeconfig file with the admin credentials.
	Kubeconfig string
	// URL is the API server's https URL.
	URL string

	dir   string
	etcd  *proc
	apisv *proc
	token string
}

// Required reports whether a missing cluster is a failure rather than a skip.
func Required() bool {
	return os.Getenv("CI") == "true" || os.Getenv("WARDEN_REQUIRE_KUBE") == "1"
}

// Assets returns the directory holding the binaries, or why it cannot.
func Assets() (string, error) {
	dir := os.Getenv(EnvAssets)
	if dir == "" {
		return "", fmt.Errorf("%s is not set (run: export %s=$(scripts/kube-assets))", EnvAssets, EnvAssets)
	}
	for _, b := range []string{"etcd", "kube-apiserver"} {
		if fi, err := os.Stat(filepath.Join(dir, b)); err != nil || fi.IsDir() {
			return "", fmt.Errorf("%s=%s has no %s binary (run scripts/kube-assets)", EnvAssets, dir, b)
		}
	}
	return dir, nil
}

var (
	sharedMu  sync.Mutex
	shared    *Cluster
	sharedErr error
)

// Shared returns the test binary's cluster, starting it on first use. It
// skips the test when the binaries are missing (fails when Required).
func Shared(t testing.TB) *Cluster {
	t.Helper()
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if shared == nil && sharedErr == nil {
		assets, err := Assets()
		if err != nil {
			sharedErr = err
		} else {
			shared, sharedErr = Start(assets)
		}
	}
	if sharedErr != nil {
		if Required() {
			t.Fatalf("kubetest: %v", sharedErr)
		}
		t.Skipf("kubetest: %v", sharedErr)
	}
	return shared
}

// Fresh starts a cluster of the test's own, stopped at cleanup, for tests
// whose cluster-wide objects (admission policies) would judge other tests'
// pods. Missing binaries skip it like Shared (fail when Required).
func Fresh(t testing.TB) *Cluster {
	t.Helper()
	assets, err := Assets()
	if err != nil {
		if Required() {
			t.Fatalf("kubetest: %v", err)
		}
		t.Skipf("kubetest: %v", err)
	}
	c, err := Start(assets)
	if err != nil {
		t.Fatalf("kubetest: %v", err)
	}
	t.Cleanup(c.Stop)
	return c
}

// Main runs the tests and stops the shared cluster, if one was started.
func Main(m *testing.M) int {
	code := m.Run()
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if shared != nil {
		shared.Stop()
		shared = nil
	}
	return code
}

// Start runs etcd and kube-apiserver from the binaries in assets, in a new
// temporary directory, and waits until the API server is ready.
func Start(assets string) (*Cluster, error) {
	dir, err := os.MkdirTemp("", "warden-kubetest-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{dir: dir}
	if err := c.start(assets); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

func (c *Cluster) start(assets string) error {
	var tok [16]byte
	_, _ = rand.Read(tok[:])
	c.token = hex.EncodeToString(tok[:])
	if err := os.WriteFile(filepath.Join(c.dir, "tokens.csv"),
		[]byte(c.token+`,warden-admin,warden-admin,"system:masters"`+"\n"), 0o600); err != nil {
		return err
	}
	if err := writeSAKey(filepath.Join(c.dir, "sa.key"), filepath.Join(c.dir, "sa.pub")); err != nil {
		return err
	}

	ports, err := freePorts(3)
	if err != nil {
		return err
	}
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(ports[0])
	peerURL := "http://127.0.0.1:" + strconv.Itoa(ports[1])
	c.etcd, err = startProc(c.dir, "etcd", filepath.Join(assets, "etcd"),
		"--name=kubetest",
		"--data-dir="+filepath.Join(c.dir, "etcd"),
		"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=kubetest="+peerURL,
		"--unsafe-no-fsync",
		"--log-level=error",
	)
	if err != nil {
		return err
	}
	if err := waitHTTP(http.DefaultClient, etcdURL+"/health", "", 30*time.Second, c.etcd); err != nil {
		return fmt.Errorf("etcd: %w", err)
	}

	c.URL = "https://127.0.0.1:" + strconv.Itoa(ports[2])
	certDir := filepath.Join(c.dir, "certs")
	c.apisv, err = startProc(c.dir, "kube-apiserver", filepath.Join(assets, "kube-apiserver"),
		"--etcd-servers="+etcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port="+strconv.Itoa(ports[2]),
		"--cert-dir="+certDir,
		"--token-auth-file="+filepath.Join(c.dir, "tokens.csv"),
		"--service-account-issuer="+Issuer,
		"--service-account-key-file="+filepath.Join(c.dir, "sa.pub"),
		"--service-account-signing-key-file="+filepath.Join(c.dir, "sa.key"),
		"--service-cluster-ip-range=10.96.0.0/24",
		"--authorization-mode=RBAC",
		"--allow-privileged=true",
		"--profiling=false",
		"--v=0",
	)
	if err != nil {
		return err
	}
	// The serving certificate is self-signed and written at startup; accept
	// it only for this loopback address until it exists, then pin it.
	insecure := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	if err := waitHTTP(insecure, c.URL+"/readyz", c.token, 90*time.Second, c.apisv); err != nil {
		return fmt.Errorf("kube-apiserver: %w", err)
	}
	ca, err := os.ReadFile(filepath.Join(certDir, "apiserver.crt"))
	if err != nil {
		return fmt.Errorf("kube-apiserver serving certificate: %w", err)
	}
	c.Config = &rest.Config{
		Host:            c.URL,
		BearerToken:     c.token,
		TLSClientConfig: rest.TLSClientConfig{CAData: ca},
		QPS:             200,
		Burst:           400,
	}
	if c.Client, err = kubernetes.NewForConfig(c.Config); err != nil {
		return err
	}
	c.Kubeconfig = filepath.Join(c.dir, "kubeconfig")
	return WriteKubeconfig(c.Kubeconfig, c.URL, ca, c.token)
}

// WriteKubeconfig writes a kubeconfig for server (CA PEM) with a bearer token.
func WriteKubeconfig(path, server string, caPEM []byte, token string) error {
	caFile := path + ".ca.crt"
	if err := os.WriteFile(caFile, caPEM, 0o600); err != nil {
		return err
	}
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: kubetest
  cluster:
    server: %s
    certificate-authority: %s
users:
- name: kubetest
  user:
    token: %s
contexts:
- name: kubetest
  context: {cluster: kubetest, user: kubetest}
current-context: kubetest
`, server, caFile, token)
	return os.WriteFile(path, []byte(kc), 0o600)
}

// Stop stops the API server and etcd and removes their files.
func (c *Cluster) Stop() {
	if c.apisv != nil {
		c.apisv.stop()
	}
	if c.etcd != nil {
		c.etcd.stop()
	}
	if c.dir != "" {
		_ = os.RemoveAll(c.dir)
	}
}

// StopEtcd stops etcd alone: the API server stays up but cannot serve, as
// in an outage of the control plane's storage.
func (c *Cluster) StopEtcd() { c.etcd.stop() }

// Namespace creates a namespace with a generated name, deleted at cleanup.
func (c *Cluster) Namespace(t testing.TB) string {
	t.Helper()
	ctx := context.Background()
	ns, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "kt-"},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("kubetest: create namespace: %v", err)
	}
	t.Cleanup(func() {
		// No namespace controller runs to empty it: delete its pods now, so
		// their IPs are free for the next test (-count=N included).
		zero := int64(0)
		_ = c.Client.CoreV1().Pods(ns.Name).DeleteCollection(context.Background(),
			metav1.DeleteOptions{GracePeriodSeconds: &zero}, metav1.ListOptions{})
		_ = c.Client.CoreV1().Namespaces().Delete(context.Background(), ns.Name, metav1.DeleteOptions{})
	})
	return ns.Name
}

// ServiceAccount creates a service account.
func (c *Cluster) ServiceAccount(t testing.TB, ns, name string) *corev1.ServiceAccount {
	t.Helper()
	sa, err := c.Client.CoreV1().ServiceAccounts(ns).Create(context.Background(), &corev1.ServiceAccount{
		ObjectMeta: metav1.ObjectMeta{Name: name},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("kubetest: create service account %s/%s: %v", ns, name, err)
	}
	return sa
}

// PodSpec describes a pod for RunningPod.
type PodSpec struct {
	Namespace, Name, ServiceAccount, Node string
	Labels                                map[string]string
	IP                                    string // status.podIP ("" for none)
	HostNetwork                           bool
}

// RunningPod creates a pod and, since no kubelet runs, sets its status as
// the kubelet would: phase Running and the given IP.
func (c *Cluster) RunningPod(t testing.TB, p PodSpec) *corev1.Pod {
	t.Helper()
	ctx := context.Background()
	if p.Node == "" {
		p.Node = "node-1"
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace, Labels: p.Labels},
		Spec: corev1.PodSpec{
			ServiceAccountName:           p.ServiceAccount,
			AutomountServiceAccountToken: new(bool),
			NodeName:                     p.Node,
			HostNetwork:                  p.HostNetwork,
			Containers:                   []corev1.Container{{Name: "app", Image: "example.invalid/app:1"}},
		},
	}
	pod, err := c.Client.CoreV1().Pods(p.Namespace).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("kubetest: create pod %s/%s: %v", p.Namespace, p.Name, err)
	}
	return c.SetPodIP(t, pod, p.IP)
}

// SetPodIP sets a pod's status to Running with ip (the node's address too,
// for a hostNetwork pod).
func (c *Cluster) SetPodIP(t testing.TB, pod *corev1.Pod, ip string) *corev1.Pod {
	t.Helper()
	pod = pod.DeepCopy()
	pod.Status.Phase = corev1.PodRunning
	hostIP := "192.0.2.1"
	if pod.Spec.HostNetwork && ip != "" {
		hostIP = ip
	}
	pod.Status.HostIP = hostIP
	pod.Status.HostIPs = []corev1.HostIP{{IP: hostIP}}
	pod.Status.PodIP = ip
	pod.Status.PodIPs = nil
	if ip != "" {
		pod.Status.PodIPs = []corev1.PodIP{{IP: ip}}
	}
	out, err := c.Client.CoreV1().Pods(pod.Namespace).UpdateStatus(context.Background(), pod, metav1.UpdateOptions{})
	if err != nil {
		t.Fatalf("kubetest: update pod status %s/%s: %v", pod.Namespace, pod.Name, err)
	}
	return out
}

// DeletePod deletes a pod at once (no kubelet would finish a graceful delete).
func (c *Cluster) DeletePod(t testing.TB, ns, name string) {
	t.Helper()
	zero := int64(0)
	if err := c.Client.CoreV1().Pods(ns).Delete(context.Background(), name, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
		t.Fatalf("kubetest: delete pod %s/%s: %v", ns, name, err)
	}
}

// Token requests a service-account token for audience, bound to pod when it
// is not nil (so TokenReview names the pod).
func (c *Cluster) Token(t testing.TB, ns, sa, audience string, pod *corev1.Pod) string {
	t.Helper()
	exp := int64(3600)
	tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		Audiences:         []string{audience},
		ExpirationSeconds: &exp,
	}}
	if pod != nil {
		tr.Spec.BoundObjectRef = &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID}
	}
	out, err := c.Client.CoreV1().ServiceAccounts(ns).CreateToken(context.Background(), sa, tr, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("kubetest: token for %s/%s: %v", ns, sa, err)
	}
	return out.Status.Token
}

// proc is a child process whose output is kept for error messages. It is
// started from a goroutine locked to its OS thread that lives as long as the
// child, so Pdeathsig kills the child if the test binary dies.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan struct{}
	err  error
	once sync.Once
}

func startProc(dir, name, bin string, args ...string) (*proc, error) {
	p := &proc{name: name, out: &lockedBuffer{}, done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine, after the child
		p.cmd = exec.Command(bin, args...)
		p.cmd.Dir = dir
		p.cmd.Stdout = p.out
		p.cmd.Stderr = p.out
		p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
		if err := p.cmd.Start(); err != nil {
			started <- fmt.Errorf("start %s: %w", name, err)
			close(p.done)
			return
		}
		started <- nil
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return p, nil
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *proc) stop() {
	p.once.Do(func() {
		if p.exited() {
			return
		}
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
}

// tail returns the last lines of the process's output.
func (p *proc) tail() string {
	lines := strings.Split(strings.TrimSpace(p.out.String()), "\n")
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return strings.Join(lines, "\n")
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.b.Len() > 4<<20 { // keep memory bounded; the tail is what matters
		rest := l.b.Bytes()[l.b.Len()-(1<<20):]
		keep := append([]byte(nil), rest...)
		l.b.Reset()
		l.b.Write(keep)
	}
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func waitHTTP(hc *http.Client, url, token string, timeout time.Duration, p *proc) error {
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		if p.exited() {
			return fmt.Errorf("exited (%v):\n%s", p.err, p.tail())
		}
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		resp, err := hc.Do(req.WithContext(ctx))
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			cancel()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("%s: %s", resp.Status, firstLines(string(body), 10))
		} else {
			cancel()
			last = err.Error()
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("not ready after %s (last: %s):\n%s", timeout, last, p.tail())
}

func firstLines(s string, n int) string {
	sc := bufio.NewScanner(strings.NewReader(s))
	var out []string
	for sc.Scan() && len(out) < n {
		out = append(out, sc.Text())
	}
	return strings.Join(out, " | ")
}

// freePorts reserves n distinct loopback ports (released before use, so a
// race with another process is possible but unlikely).
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func writeSAKey(keyPath, pubPath string) error {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return err
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return err
	}
	pub, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		return err
	}
	return os.WriteFile(pubPath, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o600)
}
