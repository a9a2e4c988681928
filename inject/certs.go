package inject

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"go.uber.org/zap"
)

// CertReloader serves the webhook's certificate from files and picks up
// new files (cert-manager renewing a Secret, the kubelet swapping its
// symlink) at the next handshake: each handshake stats both files and
// reloads the pair when either changed. A pair that does not load (a
// half-written renewal) keeps the last good one.
type CertReloader struct {
	certFile, keyFile string
	log               *zap.Logger

	mu        sync.Mutex
	cert      *tls.Certificate
	certStamp stamp
	keyStamp  stamp
	failures  uint64
}

// stamp identifies a version of a file.
type stamp struct{ fi fs.FileInfo }

func statFile(path string) (stamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return stamp{}, err
	}
	return stamp{fi: fi}, nil
}

func (a stamp) same(b stamp) bool {
	if a.fi == nil || b.fi == nil {
		return false
	}
	return os.SameFile(a.fi, b.fi) && a.fi.ModTime().Equal(b.fi.ModTime()) && a.fi.Size() == b.fi.Size()
}

// NewCertReloader loads the pair once; it fails when it does not load, or
// when the key file is readable by others than its owner.
func NewCertReloader(certFile, keyFile string, log *zap.Logger) (*CertReloader, error) {
	if log == nil {
		log = zap.NewNop()
	}
	r := &CertReloader{certFile: certFile, keyFile: keyFile, log: log}
	if err := r.reload(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *CertReloader) reload() error {
	cs, err := statFile(r.certFile)
	if err != nil {
		return fmt.Errorf("webhook certificate: %w", err)
	}
	ks, err := statFile(r.keyFile)
	if err != nil {
		return fmt.Errorf("webhook key: %w", err)
	}
	if ks.fi.Mode().Perm()&0o077 != 0 && !isKubeletProjected(r.keyFile) {
		return fmt.Errorf("webhook key %s has mode %#o: make it 0600 (readable by its owner only)", r.keyFile, ks.fi.Mode().Perm())
	}
	pair, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return fmt.Errorf("webhook certificate %s / key %s: %w", r.certFile, r.keyFile, err)
	}
	r.cert, r.certStamp, r.keyStamp = &pair, cs, ks
	return nil
}

// isKubeletProjected reports whether path is inside a Secret volume the
// kubelet wrote (a ..data symlink beside it): its mode is the volume's
// defaultMode, readable only inside the injector's container.
func isKubeletProjected(path string) bool {
	fi, err := os.Lstat(filepath.Join(filepath.Dir(path), "..data"))
	return err == nil && fi.Mode()&fs.ModeSymlink != 0
}

// GetCertificate is tls.Config.GetCertificate.
func (r *CertReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	cs, cerr := statFile(r.certFile)
	ks, kerr := statFile(r.keyFile)
	if err := errors.Join(cerr, kerr); err == nil && (!cs.same(r.certStamp) || !ks.same(r.keyStamp)) {
		if err := r.reload(); err != nil {
			// Not retried until either file changes again.
			r.certStamp, r.keyStamp = cs, ks
			r.failures++
			r.log.Warn("webhook certificate changed but does not load; serving the previous one", zap.Error(err))
		} else {
			r.log.Info("webhook certificate reloaded", zap.String("cert", r.certFile))
		}
	}
	return r.cert, nil
}

// TLSConfig is a server config serving the reloaded certificate.
func (r *CertReloader) TLSConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: r.GetCertificate}
}
