// Package redistest runs a real redis-server on loopback for the tests of
// the shared budget store: each Server has its own port and directory, and
// can be killed and started again on the same port to show what Warden
// does while Redis is gone and after it returns.
//
// The binary is redis-server on PATH (or $WARDEN_REDIS_SERVER); .ci/run
// installs it from apt. Without it a test fails under CI and skips
// elsewhere (testenv.Missing).
package redistest

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/warden-egress/warden/internal/proctest"
	"github.com/warden-egress/warden/internal/testenv"
)

const (
	startWait = 30 * time.Second
	stopWait  = 10 * time.Second
)

// Server is a running redis-server on 127.0.0.1.
type Server struct {
	Addr string // 127.0.0.1:PORT
	// Username and Password are an ACL user the server was started with
	// (allowed only what Warden needs), when StartACL made it.
	Username, Password string

	bin, dir string
	acl      bool
	proc     *proctest.Proc
}

// Binary is the redis-server to run: $WARDEN_REDIS_SERVER, else the one
// on PATH ("" when there is none).
func Binary() string {
	if p := os.Getenv("WARDEN_REDIS_SERVER"); p != "" {
		return p
	}
	p, err := exec.LookPath("redis-server")
	if err != nil {
		return ""
	}
	return p
}

// Start runs redis-server on a free loopback port, stopped when the test
// ends.
func Start(t testing.TB) *Server { return start(t, false) }

// StartACL is Start with the default user disabled and one ACL user,
// "warden", allowed only the commands and keys the budget store uses.
func StartACL(t testing.TB) *Server { return start(t, true) }

func start(t testing.TB, acl bool) *Server {
	t.Helper()
	bin := Binary()
	if bin == "" {
		testenv.Missing(t, "redis-server not found on PATH (apt-get install -y redis-server)")
		return nil
	}
	s := &Server{bin: bin, dir: t.TempDir(), Addr: proctest.FreeAddr(t), acl: acl}
	s.proc = &proctest.Proc{Name: "redistest: redis-server on " + s.Addr, StartWait: startWait, StopWait: stopWait, Poll: 20 * time.Millisecond}
	if acl {
		s.Username, s.Password = "warden", "warden-test-password"
	}
	t.Cleanup(s.Kill)
	s.start(t)
	return s
}

func (s *Server) start(t testing.TB) {
	t.Helper()
	_, port, _ := net.SplitHostPort(s.Addr)
	conf := []string{
		"bind 127.0.0.1",
		"port " + port,
		"dir " + s.dir,
		"save \"\"",
		"appendonly no",
		"protected-mode yes",
		"daemonize no",
		"logfile \"\"",
	}
	if s.acl {
		conf = append(conf,
			"user default off",
			// What the budget store runs: its scripts, the async owners' SET
			// and GET, and PING; on Warden's keys only.
			fmt.Sprintf("user %s on >%s ~warden:* resetchannels -@all +evalsha +eval +script|load +time +hget +hmget +hset +hdel +hexists +zadd +zrem +zrangebyscore +pexpire +set +get +ping +hello +auth",
				s.Username, s.Password))
	}
	path := filepath.Join(s.dir, "redis.conf")
	if err := os.WriteFile(path, []byte(strings.Join(conf, "\n")+"\n"), 0o600); err != nil {
		t.Fatalf("redistest: write %s: %v", path, err)
	}
	s.proc.Start(t, exec.Command(s.bin, path), s.ping)
}

// ping speaks just enough RESP to see the server answer (no client
// library: the helper tests the server, not a client).
func (s *Server) ping() error {
	c, err := net.DialTimeout("tcp", s.Addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	// +PONG, or -NOAUTH when the default user is off: either way it serves.
	if strings.HasPrefix(line, "+PONG") || strings.HasPrefix(line, "-NOAUTH") || strings.HasPrefix(line, "-NOPERM") {
		return nil
	}
	return fmt.Errorf("unexpected answer %q", line)
}

// Kill stops redis-server with SIGKILL, as a crash would.
func (s *Server) Kill() { s.proc.Kill() }

// Restart starts redis-server again on the same port (empty: nothing is
// saved), after killing it if it still runs.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Kill()
	s.start(t)
}

// Output is what redis-server printed since it last started.
func (s *Server) Output() string { return s.proc.Output() }
