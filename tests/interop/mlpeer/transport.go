package main

import (
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// countingTransport forwards to a NetTransport and counts every byte
// memberlist hands it for the network: UDP datagrams (WriteTo*) and writes on
// TCP streams, both the ones it dials and the ones it accepts (replies).
// Counted are memberlist's payload bytes (label, encryption, CRC, compression
// all included); IP/UDP/TCP headers are not.
//
// All NodeAwareTransport methods are implemented explicitly so that no write
// path of the inner transport is reachable without passing the counter.
type countingTransport struct {
	nt       *memberlist.NetTransport
	written  atomic.Int64
	streams  chan net.Conn
	done     chan struct{}
	stopOnce sync.Once
}

var _ memberlist.NodeAwareTransport = (*countingTransport)(nil)

func newCountingTransport(nt *memberlist.NetTransport) *countingTransport {
	t := &countingTransport{
		nt:      nt,
		streams: make(chan net.Conn),
		done:    make(chan struct{}),
	}
	go t.forwardStreams()
	return t
}

// forwardStreams wraps inbound connections before memberlist sees them.
func (t *countingTransport) forwardStreams() {
	in := t.nt.StreamCh()
	for {
		select {
		case c := <-in:
			select {
			case t.streams <- &countingConn{Conn: c, t: t}:
			case <-t.done:
				c.Close()
				return
			}
		case <-t.done:
			return
		}
	}
}

func (t *countingTransport) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	return t.nt.FinalAdvertiseAddr(ip, port)
}

func (t *countingTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	ts, err := t.nt.WriteTo(b, addr)
	if err == nil {
		t.written.Add(int64(len(b)))
	}
	return ts, err
}

func (t *countingTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	ts, err := t.nt.WriteToAddress(b, a)
	if err == nil {
		t.written.Add(int64(len(b)))
	}
	return ts, err
}

func (t *countingTransport) PacketCh() <-chan *memberlist.Packet { return t.nt.PacketCh() }

func (t *countingTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	c, err := t.nt.DialTimeout(addr, timeout)
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, t: t}, nil
}

func (t *countingTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	c, err := t.nt.DialAddressTimeout(a, timeout)
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, t: t}, nil
}

func (t *countingTransport) StreamCh() <-chan net.Conn { return t.streams }

func (t *countingTransport) Shutdown() error {
	t.stopOnce.Do(func() { close(t.done) })
	return t.nt.Shutdown()
}

// countingConn counts the bytes successfully written to a stream.
type countingConn struct {
	net.Conn
	t *countingTransport
}

func (c *countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.t.written.Add(int64(n))
	return n, err
}
