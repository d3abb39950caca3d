package testenv

import (
	"io"
	"net"
	"sync"
	"testing"
)

// FaultProxy is a TCP proxy in front of a real server (a database) that a
// test can cut and restore, to simulate an outage without stopping a
// server other tests share. While down it refuses new connections and has
// closed every open one, as a crashed server would. Paused, it accepts
// connections and forwards nothing, as a hung server or a network that
// drops packets would: clients wait until their own timeouts.
type FaultProxy struct {
	t      testing.TB
	target string
	addr   string

	mu     sync.Mutex
	ln     net.Listener
	conns  map[net.Conn]bool
	paused bool
	resume *sync.Cond
}

// NewFaultProxy starts a proxy to target ("127.0.0.1:5432") on a free
// loopback port; it is stopped when the test ends.
func NewFaultProxy(t testing.TB, target string) *FaultProxy {
	t.Helper()
	p := &FaultProxy{t: t, target: target, conns: map[net.Conn]bool{}}
	p.resume = sync.NewCond(&p.mu)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("fault proxy: %v", err)
	}
	p.addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(p.Down)
	return p
}

// Addr is the proxy's host:port.
func (p *FaultProxy) Addr() string { return p.addr }

// Pause stops forwarding bytes in both directions; connections stay open.
func (p *FaultProxy) Pause() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.paused = true
}

// Resume forwards again what was held.
func (p *FaultProxy) Resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.paused = false
	p.resume.Broadcast()
}

// Down closes the listener and every connection.
func (p *FaultProxy) Down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.paused = false
	p.resume.Broadcast()
	if p.ln != nil {
		_ = p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		_ = c.Close()
	}
	p.conns = map[net.Conn]bool{}
}

// Up listens again on the same address.
func (p *FaultProxy) Up() {
	p.t.Helper()
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.t.Fatalf("fault proxy: listening again on %s: %v", p.addr, err)
	}
	p.serve(ln)
}

func (p *FaultProxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.pipe(c)
		}
	}()
}

func (p *FaultProxy) pipe(client net.Conn) {
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		_ = client.Close()
		return
	}
	p.mu.Lock()
	if p.ln == nil { // went down meanwhile
		p.mu.Unlock()
		_ = client.Close()
		_ = server.Close()
		return
	}
	p.conns[client], p.conns[server] = true, true
	p.mu.Unlock()
	go func() { p.copy(server, client); _ = server.Close() }()
	p.copy(client, server)
	_ = client.Close()
}

// copy forwards src to dst, holding each chunk while the proxy is paused.
func (p *FaultProxy) copy(dst io.Writer, src io.Reader) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			for p.paused {
				p.resume.Wait()
			}
			p.mu.Unlock()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
