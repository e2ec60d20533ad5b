//go:build !linux

package ingest

import "net"

// rawIO is Linux only; elsewhere the connection's own Read and Write are
// used.
type rawIO struct{}

func newRawIO(net.Conn) *rawIO { return nil }

func (*rawIO) read([]byte) (int, error) { panic("unreachable") }

func (*rawIO) write([]byte) int { panic("unreachable") }
