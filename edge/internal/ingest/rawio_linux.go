package ingest

import (
	"io"
	"net"
	"syscall"
	"unsafe"
)

// rawIO reads and writes a plain TCP connection with raw system calls.
//
// The socket is non-blocking (the runtime's poller waits for it), so a
// read or write returns at once and needs no handing of the P to another
// thread; a raw call also skips the runtime's syscall entry, which, when
// the process was idle, wakes the sysmon thread and sets it back to
// polling every 20 µs. With the lean client's cycle (sleep 1 ms, read a
// batch, write the PUBACKs, sleep) every cycle woke sysmon that way: in a
// CPU profile at 10k readings/s sysmon's wake-ups were a third of the
// agent's CPU time.
type rawIO struct {
	rc syscall.RawConn
}

func newRawIO(conn net.Conn) *rawIO {
	tc, ok := conn.(*net.TCPConn)
	if !ok {
		return nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	return &rawIO{rc: rc}
}

// read reads into b (len(b) > 0), waiting in the poller until the
// socket has data.
func (r *rawIO) read(b []byte) (int, error) {
	var n uintptr
	var errno syscall.Errno
	err := r.rc.Read(func(fd uintptr) bool {
		for {
			n, _, errno = syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
			if errno != syscall.EINTR {
				return errno != syscall.EAGAIN
			}
		}
	})
	switch {
	case err != nil:
		return 0, err
	case errno != 0:
		return 0, &net.OpError{Op: "read", Net: "tcp", Err: errno}
	case n == 0:
		return 0, io.EOF
	}
	return int(n), nil
}

// write writes what it can of b without waiting and returns how much
// (the caller writes the rest through the connection).
func (r *rawIO) write(b []byte) int {
	var n uintptr
	var errno syscall.Errno
	err := r.rc.Write(func(fd uintptr) bool {
		for {
			n, _, errno = syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
			if errno != syscall.EINTR {
				return true // never wait here
			}
		}
	})
	if err != nil || errno != 0 {
		return 0
	}
	return int(n)
}
