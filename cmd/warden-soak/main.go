// Command warden-soak runs Warden in-process under a bounded, loopback-only
// soak: the real Go SDK makes mixed unary and streaming calls (some clients
// hang up mid-stream) while the policy is reloaded every few seconds (now
// and then with an invalid file that must be rejected) and the HTTP audit
// sink goes away and comes back. It prints RSS, post-GC heap, goroutines and
// open fds over time with calls by outcome, then checks that the call,
// reload and audit counts add up and that goroutines, fds and heap return
// to their baseline once the load stops.
//
// It is its own command so that the production binary (cmd/warden) links
// no emulator and no load generator.
//
//	go run ./cmd/warden-soak --duration 10m
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
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "warden-soak:", err)
		os.Exit(1)
	}
}

// run parses the flags, soaks and returns an error when the verdict fails.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("warden-soak", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := DefaultOptions()
	fs.DurationVar(&o.Duration, "duration", o.Duration, "how long the load runs (after the warm-up)")
	fs.IntVar(&o.Concurrency, "concurrency", o.Concurrency, "client workers making calls back to back")
	fs.Float64Var(&o.Rate, "rate", o.Rate, "at most this many calls per second in all (0: as fast as the workers go)")
	fs.DurationVar(&o.ReloadEvery, "reload-every", o.ReloadEvery, "rewrite the config and reload it this often (0: never)")
	fs.DurationVar(&o.OutageEvery, "outage-every", o.OutageEvery, "stop the HTTP audit sink this often (0: never)")
	fs.DurationVar(&o.OutageFor, "outage-for", o.OutageFor, "how long each sink outage lasts")
	fs.DurationVar(&o.ReportEvery, "report-every", o.ReportEvery, "print a row of measurements this often")
	fs.DurationVar(&o.Warmup, "warmup", o.Warmup, "load before the baseline is measured")
	fs.DurationVar(&o.Settle, "settle", o.Settle, "after the load, how long goroutines, fds and heap may take to return to baseline")
	fs.DurationVar(&o.EventDelay, "event-delay", o.EventDelay, "the emulator's pause between stream events (so hang-ups land mid-stream)")
	fs.BoolVar(&o.Log, "log", false, "print Warden's warnings and errors (JSON) to stderr")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.Log {
		o.LogTo = stderr
	}
	rep, err := Soak(ctx, o, stdout)
	if err != nil {
		return err
	}
	if p := rep.Problems(); len(p) > 0 {
		return errors.New("verdict: FAIL")
	}
	return nil
}

// DefaultOptions are the command's defaults: a minute at CI's size.
func DefaultOptions() Options {
	return Options{
		Duration:    time.Minute,
		Concurrency: 8,
		ReloadEvery: 3 * time.Second,
		OutageEvery: 20 * time.Second,
		OutageFor:   5 * time.Second,
		ReportEvery: 10 * time.Second,
		Warmup:      3 * time.Second,
		Settle:      time.Minute,
		EventDelay:  5 * time.Millisecond,
	}
}
