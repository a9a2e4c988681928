// Command warden is the Warden egress proxy for Amazon Bedrock.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `warden — per-application control over Amazon Bedrock

usage:
  warden serve --config FILE        run the proxy
  warden policy validate --config FILE
                                    check a configuration file and exit
  warden keys issue|genmaster|inspect  Warden-issued SigV4 keys (warden keys help)
  warden iptables [--port 8482] [--uid N] [--gid N] [--cidr CIDR]… [--exclude-cidr CIDR]… [--apply]
                                    print (or install) the transparent-mode NAT rules for an init container
  warden ca bundle|cert --ca-cert FILE --out FILE
                                    CA files for apps using the forward proxy (warden ca help)
  warden healthcheck [--url URL]    probe the admin /healthz (for container health checks)
  warden version
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = cmdServe(ctx, args[1:], stdout, stderr)
	case "healthcheck":
		err = cmdHealthcheck(ctx, args[1:], stdout, stderr)
	case "policy":
		err = cmdPolicy(ctx, args[1:], stdout, stderr)
	case "iptables":
		err = cmdIptables(ctx, args[1:], stdout, stderr)
	case "keys":
		err = cmdKeys(ctx, args[1:], stdout, stderr)
	case "ca":
		err = cmdCA(ctx, args[1:], stdout, stderr)
	case "audit":
		err = cmdAudit(ctx, args[1:], stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "warden", version)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "warden: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "warden %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"
