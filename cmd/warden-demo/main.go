// Command warden-demo runs Warden offline: a local Bedrock emulator, Warden
// with an example policy (demo.yaml) in front of it, and the real Go SDK
// making allowed and denied calls, each printed with its audit record.
//
//	go run ./cmd/warden-demo            the demo
//	go run ./cmd/warden-demo --policy   print the example policy
//
// It is its own command so that the production binary (cmd/warden) links no
// emulator.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the command without the process: it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	err := cmdDemo(ctx, args, stdout, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0 // the flag set has printed its usage
	}
	if err != nil {
		fmt.Fprintf(stderr, "warden-demo: %v\n", err)
		return 1
	}
	return 0
}
