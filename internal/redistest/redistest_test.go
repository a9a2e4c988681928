package redistest

import (
	"net"
	"testing"
)

// The helper starts a server, kills it (the port refuses), and starts it
// again on the same port.
func TestStartKillRestart(t *testing.T) {
	s := Start(t)
	if err := s.ping(); err != nil {
		t.Fatalf("started server does not answer: %v\n%s", err, s.Output())
	}
	s.Kill()
	if c, err := net.Dial("tcp", s.Addr); err == nil {
		c.Close()
		t.Fatalf("%s still accepts after Kill", s.Addr)
	}
	s.Restart(t)
	if err := s.ping(); err != nil {
		t.Fatalf("restarted server does not answer: %v", err)
	}
}
