package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/warden-egress/warden/proxy/mitm"
)

const caUsage = `usage:
  warden ca bundle --out FILE --ca-cert FILE [--system-roots FILE]
      write a CA bundle for AWS_CA_BUNDLE: the system roots followed by Warden's CA certificate (mode 0644; the
      bundle is public). The AWS SDK for Go (and the CLI, boto3) REPLACES the system roots with AWS_CA_BUNDLE, so
      a file holding only Warden's certificate would break every other AWS call the app makes (STS, S3, ...);
      hence the full bundle. System roots are read from --system-roots, else $SSL_CERT_FILE, else the first of
      the standard files (/etc/ssl/certs/ca-certificates.crt, /etc/pki/tls/certs/ca-bundle.crt, ...).
  warden ca cert --out FILE --ca-cert FILE
      write just Warden's CA certificate (mode 0644), for Node.js apps: NODE_EXTRA_CA_CERTS ADDS certificates to
      Node's built-in roots, so it takes the certificate alone.

  --ca-cert is Warden's CA certificate (PEM). It is checked before anything is written: it must be a CA whose
  critical name constraints permit only Bedrock runtime names and exclude every IP address.
  Only the certificate is ever read; the CA key is not needed and never leaves Warden.
`

// systemRootFiles is Go's crypto/x509 root_linux.go list, in its order.
var systemRootFiles = []string{
	"/etc/ssl/certs/ca-certificates.crt",                // Debian/Ubuntu/Gentoo etc.
	"/etc/pki/tls/certs/ca-bundle.crt",                  // Fedora/RHEL 6
	"/etc/ssl/ca-bundle.pem",                            // OpenSUSE
	"/etc/pki/tls/cacert.pem",                           // OpenELEC
	"/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem", // CentOS/RHEL 7
	"/etc/ssl/cert.pem",                                 // Alpine Linux
}

func cmdCA(_ context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("a subcommand is required\n" + caUsage)
	}
	switch args[0] {
	case "bundle":
		return caWrite(args[1:], true, stdout, stderr)
	case "cert":
		return caWrite(args[1:], false, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, caUsage)
		return nil
	}
	return usageErrorf("unknown subcommand %q\n%s", args[0], caUsage)
}

func caWrite(args []string, bundle bool, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ca", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, caUsage) }
	out := fs.String("out", "", "file to write")
	caCert := fs.String("ca-cert", "", "Warden's CA certificate (PEM)")
	roots := fs.String("system-roots", "", "system root bundle to include (default: $SSL_CERT_FILE or the standard files)")
	if err := parseFlags(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *out == "" || *caCert == "" {
		return errors.New("--out and --ca-cert are required\n" + caUsage)
	}
	certPEM, err := readWardenCACert(*caCert)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if bundle {
		rootsPEM, from, err := readSystemRoots(*roots)
		if err != nil {
			return err
		}
		buf.Write(caBundle(rootsPEM, certPEM))
		fmt.Fprintf(stdout, "wrote %s: system roots from %s plus Warden's CA certificate\nset AWS_CA_BUNDLE=%s\n", *out, from, *out)
	} else {
		buf.Write(certPEM)
		fmt.Fprintf(stdout, "wrote %s: Warden's CA certificate\nset NODE_EXTRA_CA_CERTS=%s\n", *out, *out)
	}
	return writePublicFile(*out, buf.Bytes())
}

// caBundle is the system roots followed by Warden's CA certificate.
func caBundle(rootsPEM, certPEM []byte) []byte {
	var buf bytes.Buffer
	buf.Write(rootsPEM)
	if !bytes.HasSuffix(rootsPEM, []byte("\n")) {
		buf.WriteByte('\n')
	}
	buf.WriteString("\n# Warden egress proxy CA (name-constrained to Amazon Bedrock runtime hosts)\n")
	buf.Write(certPEM)
	return buf.Bytes()
}

// readWardenCACert returns the PEM of the single CA certificate in file, refusing anything that is not a
// name-constrained Warden CA.
func readWardenCACert(file string) ([]byte, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var cert *x509.Certificate
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("%s holds a %q block: give the certificate only (never the key)", file, block.Type)
		}
		if cert != nil {
			return nil, fmt.Errorf("%s holds more than one certificate", file)
		}
		if cert, err = x509.ParseCertificate(block.Bytes); err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
	}
	if cert == nil {
		return nil, fmt.Errorf("%s holds no PEM certificate", file)
	}
	if err := mitm.CheckCert(cert); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), nil
}

// readSystemRoots reads the explicit file, else $SSL_CERT_FILE, else the first standard bundle that exists, and
// checks it holds at least one certificate.
func readSystemRoots(explicit string) ([]byte, string, error) {
	candidates := systemRootFiles
	switch {
	case explicit != "":
		candidates = []string{explicit}
	case os.Getenv("SSL_CERT_FILE") != "":
		candidates = []string{os.Getenv("SSL_CERT_FILE")}
	}
	for _, f := range candidates {
		data, err := os.ReadFile(f)
		if err != nil {
			if explicit != "" || len(candidates) == 1 {
				return nil, "", fmt.Errorf("system roots: %w", err)
			}
			continue
		}
		if !x509.NewCertPool().AppendCertsFromPEM(data) {
			return nil, "", fmt.Errorf("system roots %s hold no PEM certificate", f)
		}
		return data, f, nil
	}
	return nil, "", errors.New("no system root bundle found; pass --system-roots FILE")
}

// writePublicFile writes data to path with mode 0644, atomically (temporary file and rename).
func writePublicFile(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".warden-ca-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
