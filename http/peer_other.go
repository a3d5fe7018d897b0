//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package http

import "syscall"

// peerClosed cannot peek at a socket on this system: a long read stops at
// its deadline or at shutdown, not when its client goes.
func peerClosed(syscall.RawConn) bool { return false }
