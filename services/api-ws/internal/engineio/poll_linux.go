package engineio

import (
	"errors"
	"sync"

	"golang.org/x/sys/unix"
)

// poller reads idle WebSocket connections without a goroutine each: one
// epoll instance watches every connection's descriptor (level-triggered,
// one-shot), one goroutine waits on it and hands ready connections to a few
// read workers, which read until the socket is empty and re-arm it. A
// connection is with at most one worker at a time (one-shot), so its
// reader state needs no lock. Go's own netpoller keeps the descriptor too
// (writes that must wait still use it).
type poller struct {
	epfd  int
	wake  int // eventfd that interrupts epoll_wait on close
	mu    sync.RWMutex
	conns map[int32]*wsConn
	ready chan *wsConn
	stop  chan struct{}
	wg    sync.WaitGroup
}

// readBuf is what one read takes from a socket at most; workers own one each.
const readBuf = 64 << 10

func newPoller(workers int) (*poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, err
	}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wake, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(wake)}); err != nil {
		unix.Close(epfd)
		unix.Close(wake)
		return nil, err
	}
	p := &poller{epfd: epfd, wake: wake, conns: map[int32]*wsConn{}, ready: make(chan *wsConn, 4096), stop: make(chan struct{})}
	p.wg.Add(1 + workers)
	go p.wait()
	for range workers {
		go p.work()
	}
	return p, nil
}

var errNoFD = errors.New("engineio: connection has no descriptor")

func (p *poller) add(c *wsConn) error {
	fd := -1
	if err := c.raw.Control(func(f uintptr) { fd = int(f) }); err != nil || fd < 0 {
		return errNoFD
	}
	p.mu.Lock()
	p.conns[int32(fd)] = c
	c.fd = fd
	p.mu.Unlock()
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT, Fd: int32(fd)}
	if err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		p.mu.Lock()
		delete(p.conns, int32(fd))
		c.fd = -1
		p.mu.Unlock()
		return err
	}
	return nil
}

// remove forgets c; it runs before the descriptor is closed, so a number
// the kernel hands out again never reaches the old connection.
func (p *poller) remove(c *wsConn) {
	p.mu.Lock()
	fd := c.fd
	if fd >= 0 && p.conns[int32(fd)] == c {
		delete(p.conns, int32(fd))
		_ = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, fd, nil)
	}
	c.fd = -1
	p.mu.Unlock()
}

// rearm enables the next event of c: readable, and writable while a
// writer waits for it. Under p.mu, so a concurrent waitWrite's interest is
// never overwritten by a stale one.
func (p *poller) rearm(c *wsConn) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	p.modLocked(c)
}

func (p *poller) modLocked(c *wsConn) {
	if c.fd < 0 || p.conns[int32(c.fd)] != c {
		return
	}
	events := uint32(unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT)
	if c.wantWrite.Load() {
		events |= unix.EPOLLOUT
	}
	ev := unix.EpollEvent{Events: events, Fd: int32(c.fd)}
	_ = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_MOD, c.fd, &ev)
}

// waitWrite asks to be told when c can take more output: the session's
// writer then continues on the pool, so a socket whose peer reads slowly
// holds no goroutine while it waits.
func (p *poller) waitWrite(c *wsConn) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c.fd < 0 || p.conns[int32(c.fd)] != c {
		return errNoFD
	}
	c.wantWrite.Store(true)
	p.modLocked(c)
	return nil
}

func (p *poller) close() {
	close(p.stop)
	var one [8]byte
	one[0] = 1
	_, _ = unix.Write(p.wake, one[:])
	p.wg.Wait()
	unix.Close(p.epfd)
	unix.Close(p.wake)
}

func (p *poller) wait() {
	defer p.wg.Done()
	events := make([]unix.EpollEvent, 256)
	for {
		n, err := unix.EpollWait(p.epfd, events, -1)
		if err != nil && err != unix.EINTR {
			return
		}
		for i := range n {
			fd := events[i].Fd
			if int(fd) == p.wake {
				return
			}
			p.mu.RLock()
			c := p.conns[fd]
			p.mu.RUnlock()
			if c == nil {
				continue
			}
			e := events[i].Events
			if e&unix.EPOLLOUT != 0 && c.wantWrite.CompareAndSwap(true, false) {
				c.r.sess.srv.schedule(c.r.sess) // the writer that waited goes on
			}
			if e&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) == 0 {
				p.rearm(c) // only writable: keep watching for input
				continue
			}
			select {
			case p.ready <- c:
			case <-p.stop:
				return
			}
		}
	}
}

func (p *poller) work() {
	defer p.wg.Done()
	buf := make([]byte, readBuf)
	for {
		select {
		case <-p.stop:
			return
		case c := <-p.ready:
			c.rmu.Lock()
			more := p.read(c, buf)
			c.rmu.Unlock()
			if more {
				p.rearm(c)
			}
		}
	}
}

// read takes what the socket holds and feeds it to the connection's
// reader; false when the connection ended.
func (p *poller) read(c *wsConn, buf []byte) bool {
	for {
		var n int
		var rerr error
		if err := c.raw.Control(func(fd uintptr) {
			for {
				n, rerr = unix.Read(int(fd), buf)
				if rerr != unix.EINTR {
					return
				}
			}
		}); err != nil {
			c.r.done(c)
			return false
		}
		switch {
		case rerr == unix.EAGAIN:
			return true
		case rerr != nil || n == 0:
			c.r.done(c)
			return false
		}
		if !c.r.feed(c, buf[:n]) {
			c.r.done(c)
			return false
		}
		if n < len(buf) {
			return true // drained; level-triggered re-arm catches the rest
		}
	}
}
