// Package proctest runs a server process for a test (redis-server, MinIO):
// start and wait until it is ready, stop, kill as a crash would, restart,
// and keep what it printed for failure messages. redistest and miniotest
// build on it.
package proctest

import (
	"net"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/warden-egress/warden/internal/testenv"
)

// Proc is one server process at a time.
type Proc struct {
	// Name says which server in messages ("redistest: redis-server on …").
	Name string
	// StartWait bounds the wait for ready; StopWait how long a stop may
	// take before the process is killed; Poll the pause between readiness
	// checks.
	StartWait, StopWait, Poll time.Duration

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
	out  *testenv.Buffer
}

// Start runs cmd (its output captured) and returns once ready answers nil;
// the test fails if the process exits first, or is killed and fails after
// StartWait.
func (p *Proc) Start(t testing.TB, cmd *exec.Cmd, ready func() error) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		t.Fatalf("%s: already running", p.Name)
	}
	out := &testenv.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: start %s: %v", p.Name, cmd.Path, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	p.cmd, p.done, p.out = cmd, done, out
	deadline := time.Now().Add(p.StartWait)
	for {
		select {
		case <-done:
			p.cmd = nil
			t.Fatalf("%s: exited during start: %s\n%s", p.Name, cmd.ProcessState, out.String())
		default:
		}
		err := ready()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			p.stopLocked(syscall.SIGKILL)
			t.Fatalf("%s: not ready after %s (last: %v)\n%s", p.Name, p.StartWait, err, out.String())
		}
		time.Sleep(p.Poll)
	}
}

// Stop sends SIGTERM and waits for the process to exit (killing it after
// StopWait).
func (p *Proc) Stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopLocked(syscall.SIGTERM)
}

// Kill stops the process with SIGKILL, as a crash would.
func (p *Proc) Kill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopLocked(syscall.SIGKILL)
}

func (p *Proc) stopLocked(sig syscall.Signal) {
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(p.StopWait):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	p.cmd = nil
}

// Output is what the process printed since it last started.
func (p *Proc) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.out == nil {
		return ""
	}
	return p.out.String()
}

// FreeAddr returns a loopback address with a port nothing listens on now.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proctest: find a free port: %v", err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}
