//go:build !linux

package proxy

import "net"

// connWatcher needs epoll; elsewhere every detached stream's connection is
// watched by a reading goroutine (hijackedStream.watch).
type connWatcher struct{}

func (w *connWatcher) add(net.Conn, func()) (func(), bool) { return nil, false }
func (w *connWatcher) close()                              {}
