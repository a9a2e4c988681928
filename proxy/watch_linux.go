//go:build linux

package proxy

import (
	"errors"
	"net"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// connWatcher notices, for every detached stream at once, a client that
// closes or resets its connection: one epoll instance, registered for
// EPOLLRDHUP (HUP and ERR always come), read by one goroutine, in place of
// a goroutine blocked in a read per stream (4 KiB of stack each, issue 19).
// Bytes a client sends after its request are not read (the answer says
// Connection: close). A connection whose socket cannot be reached (an
// unknown wrapper) is watched by a reading goroutine instead.
type connWatcher struct {
	mu   sync.Mutex
	epfd int
	// wake is an eventfd in the epoll set that close writes: closing the
	// epoll descriptor does not wake a thread blocked in epoll_wait on it,
	// so the loop is told to stop and closes both descriptors itself.
	wake    int
	started bool
	closed  bool
	gen     uint32
	watched map[int32]watchEntry
}

type watchEntry struct {
	gen  uint32
	gone func()
}

// add watches conn until the returned remove is called (before conn is
// closed); gone runs, once, on the watcher's goroutine, when the client
// hangs up. ok is false when conn cannot be watched this way.
func (w *connWatcher) add(conn net.Conn, gone func()) (remove func(), ok bool) {
	rc, ok := rawConnOf(conn)
	if !ok {
		return nil, false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil, false
	}
	if !w.started {
		fd, wake, err := newEpoll()
		if err != nil {
			return nil, false
		}
		w.epfd, w.wake, w.started, w.watched = fd, wake, true, make(map[int32]watchEntry)
		go w.loop(fd, wake)
	}
	w.gen++
	gen := w.gen
	var fdv int32
	var cerr error
	err := rc.Control(func(fd uintptr) {
		fdv = int32(fd)
		ev := unix.EpollEvent{Events: unix.EPOLLRDHUP | unix.EPOLLET, Fd: fdv, Pad: int32(gen)}
		cerr = unix.EpollCtl(w.epfd, unix.EPOLL_CTL_ADD, int(fd), &ev)
	})
	if err != nil || cerr != nil {
		return nil, false
	}
	w.watched[fdv] = watchEntry{gen: gen, gone: gone}
	epfd := w.epfd
	return func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		if e, ok := w.watched[fdv]; ok && e.gen == gen {
			delete(w.watched, fdv)
		}
		if !w.closed {
			_ = rc.Control(func(fd uintptr) { _ = unix.EpollCtl(epfd, unix.EPOLL_CTL_DEL, int(fd), nil) })
		}
	}, true
}

// newEpoll makes the epoll set and the eventfd, in it, that stops the loop.
func newEpoll() (epfd, wake int, err error) {
	epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return -1, -1, err
	}
	wake, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		_ = unix.Close(epfd)
		return -1, -1, err
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(wake)}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wake, &ev); err != nil {
		_ = unix.Close(wake)
		_ = unix.Close(epfd)
		return -1, -1, err
	}
	return epfd, wake, nil
}

func (w *connWatcher) loop(epfd, wake int) {
	// The descriptors are closed here, after the last wait on them: closed
	// while a wait was blocked, their numbers could be reused under it.
	// Marked closed first, under the lock, so that neither close (its
	// write to wake) nor a remove (its EPOLL_CTL_DEL) can reach a number
	// reused since, should the wait fail.
	defer func() {
		w.mu.Lock()
		w.closed = true
		_ = unix.Close(epfd)
		_ = unix.Close(wake)
		w.mu.Unlock()
	}()
	events := make([]unix.EpollEvent, 128)
	for {
		n, err := unix.EpollWait(epfd, events, -1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return
		}
		var gone []func()
		w.mu.Lock()
		for _, ev := range events[:n] {
			if ev.Fd == int32(wake) { // close: no connection is watched any more
				w.mu.Unlock()
				return
			}
			// An event for a connection already removed (its descriptor
			// perhaps reused since) carries an older generation.
			if e, ok := w.watched[ev.Fd]; ok && e.gen == uint32(ev.Pad) {
				delete(w.watched, ev.Fd)
				gone = append(gone, e.gone)
			}
		}
		w.mu.Unlock()
		for _, f := range gone {
			f()
		}
	}
}

// close stops the watcher's goroutine, which closes its descriptors.
func (w *connWatcher) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.started && !w.closed {
		var one [8]byte
		one[0] = 1 // an eventfd counter is a host-endian uint64; 1 in either byte order is non-zero
		_, _ = unix.Write(w.wake, one[:])
	}
	w.closed = true
}

// rawConnOf finds the socket under conn's wrappers (TLS, the connection
// limits, a redirect, PROXY protocol).
func rawConnOf(conn net.Conn) (syscall.RawConn, bool) {
	for range 8 {
		switch c := conn.(type) {
		case syscall.Conn:
			rc, err := c.SyscallConn()
			return rc, err == nil
		case interface{ NetConn() net.Conn }:
			conn = c.NetConn()
		default:
			return nil, false
		}
	}
	return nil, false
}
