// Command warden-bench measures Warden's cost in-process against a local
// Bedrock emulator, with the real Go SDK as the client:
//
//	go run ./cmd/warden-bench [flags]        endpoint mode against a direct call and a bare reverse proxy
//	go run ./cmd/warden-bench proxy [flags]  forward-proxy mode against a bare goproxy MITM
//	go run ./cmd/warden-bench stream [flags] the output guard's stream hold-back against no guard
//	go run ./cmd/warden-bench budgets [flags] local budgets on against off, interleaved in blocks
//	go run ./cmd/warden-bench wrk [flags]    wrk against direct, a bare Go proxy, nginx and the warden binary
//	go run ./cmd/warden-bench trace FILE...  the slowest calls' time by stage, goroutine state and GC
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

const usage = `warden-bench — measure Warden against a local Bedrock emulator

usage:
  warden-bench [flags]         measure endpoint mode against a direct call and a bare reverse proxy
  warden-bench proxy [flags]   measure forward-proxy mode against a bare goproxy MITM
  warden-bench stream [flags]  measure the output guard's stream hold-back against no guard
  warden-bench budgets [flags] measure Warden with local budgets on against off, interleaved in blocks
  warden-bench streams [flags] hold N (default 10,000) ConverseStreams open through the warden binary: RSS per stream
  warden-bench wrk [flags]     wrk against direct, a bare Go proxy, nginx and the warden binary (4 KB and 800 KB prompts)
  warden-bench trace TRACE...  where the slowest calls' time went, from execution traces of a Warden run with --pprof
  warden-bench help            this text; add -h after a command for its flags
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the command without the process: it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	name, cmd := "warden-bench", cmdBench
	if len(args) > 0 {
		switch args[0] {
		case "proxy":
			name, cmd, args = "warden-bench proxy", cmdBenchProxy, args[1:]
		case "stream":
			name, cmd, args = "warden-bench stream", cmdBenchStream, args[1:]
		case "budgets":
			name, cmd, args = "warden-bench budgets", cmdBenchBudgets, args[1:]
		case "wrk":
			name, cmd, args = "warden-bench wrk", cmdBenchWrk, args[1:]
		case "streams":
			name, cmd, args = "warden-bench streams", cmdBenchStreams, args[1:]
		case "trace":
			name, cmd, args = "warden-bench trace", cmdTrace, args[1:]
		case "_standin": // the bench's own child processes
			name, cmd, args = "warden-bench _standin", cmdStandin, args[1:]
		case "_bare":
			name, cmd, args = "warden-bench _bare", cmdBare, args[1:]
		case "_gosync":
			name, cmd, args = "warden-bench _gosync", cmdGoSync, args[1:]
		case "_goraw":
			name, cmd, args = "warden-bench _goraw", cmdGoRaw, args[1:]
		case "help", "--help":
			fmt.Fprint(stdout, usage)
			return 0
		}
	}
	err := cmd(ctx, args, stdout, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0 // the flag set has printed its usage
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
	return 0
}
