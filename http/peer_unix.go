//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package http

import "syscall"

// peerClosed tells whether the other end has closed the connection: a
// peek that reads nothing without blocking is the end of the stream, and
// an error other than "nothing yet" is a reset one. Bytes waiting (a
// pipelined request) mean the client is there.
func peerClosed(rc syscall.RawConn) bool {
	closed := false
	err := rc.Read(func(fd uintptr) bool {
		var b [1]byte
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case err == syscall.EAGAIN || err == syscall.EWOULDBLOCK || err == syscall.EINTR:
		case err != nil:
			closed = true
		case n == 0:
			closed = true
		}
		return true
	})
	return closed || err != nil
}
