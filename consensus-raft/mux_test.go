package consensusraft

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// muxFixture is a peerMux on a loopback port whose forwarding handler
// echoes, so tests can tell which side got a connection.
type muxFixture struct {
	m    *peerMux
	addr string
	fwd  chan net.Conn
}

func newMuxFixture(t *testing.T) *muxFixture {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &muxFixture{addr: ln.Addr().String(), fwd: make(chan net.Conn, 4)}
	f.m = newPeerMux(ln, nil, time.Second, func(c net.Conn) {
		f.fwd <- c
		_, _ = io.Copy(c, c) // echo until the peer or Close ends it
	}, slog.New(slog.DiscardHandler))
	t.Cleanup(f.m.Close)
	return f
}

func TestMuxRoutesByFirstByte(t *testing.T) {
	f := newMuxFixture(t)

	// raft's Dial writes the raft byte first; Accept hands the connection
	// over with that byte consumed.
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := f.m.raft.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	rc, err := f.m.raft.Dial(raft.ServerAddress(f.addr), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, err := rc.Write([]byte("append-entries")); err != nil {
		t.Fatal(err)
	}
	var sc net.Conn
	select {
	case sc = <-accepted:
	case <-time.After(2 * time.Second):
		t.Fatal("raft connection not delivered to Accept")
	}
	defer sc.Close()
	got := make([]byte, len("append-entries"))
	_ = sc.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.ReadFull(sc, got); err != nil || string(got) != "append-entries" {
		t.Fatalf("raft side read %q, %v", got, err)
	}
	select {
	case <-f.fwd:
		t.Fatal("raft connection reached the forwarding handler")
	default:
	}

	// The forwarding byte reaches the forwarding handler on the same port.
	fc, err := dialPeer(context.Background(), f.addr, muxForward, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer fc.Close()
	select {
	case <-f.fwd:
	case <-time.After(2 * time.Second):
		t.Fatal("forwarding connection not handed to its handler")
	}
	if _, err := fc.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	echo := make([]byte, 4)
	_ = fc.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.ReadFull(fc, echo); err != nil || string(echo) != "ping" {
		t.Fatalf("forwarding echo %q, %v", echo, err)
	}
}

func TestMuxGarbageClosesOnlyThatConnection(t *testing.T) {
	f := newMuxFixture(t)
	good, err := dialPeer(context.Background(), f.addr, muxForward, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer good.Close()
	<-f.fwd

	for _, first := range [][]byte{{0x00}, []byte("GET / HTTP/1.1\r\n")} {
		bad, err := net.Dial("tcp", f.addr)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := bad.Write(first); err != nil {
			t.Fatal(err)
		}
		_ = bad.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, err := bad.Read(make([]byte, 1))
		bad.Close()
		if n != 0 || err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("first bytes %q: read %d bytes, err %v; want the server to close", first, n, err)
		}
	}

	// The healthy connection and the listener are unaffected.
	if _, err := good.Write([]byte("still")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	_ = good.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.ReadFull(good, buf); err != nil || string(buf) != "still" {
		t.Fatalf("healthy connection after garbage: %q, %v", buf, err)
	}
	again, err := dialPeer(context.Background(), f.addr, muxForward, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	select {
	case <-f.fwd:
	case <-time.After(2 * time.Second):
		t.Fatal("listener stopped routing after a garbage connection")
	}
}

func TestMuxSilentConnectionTimesOut(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := newPeerMux(ln, nil, 100*time.Millisecond, func(net.Conn) {}, slog.New(slog.DiscardHandler))
	defer m.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	began := time.Now()
	if _, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("silent connection: %v, want it closed by the server", err)
	}
	if d := time.Since(began); d > 2*time.Second {
		t.Fatalf("silent connection closed after %s", d)
	}
}

func TestMuxCloseEndsEverything(t *testing.T) {
	f := newMuxFixture(t)
	fc, err := dialPeer(context.Background(), f.addr, muxForward, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer fc.Close()
	<-f.fwd

	var wg sync.WaitGroup
	var acceptErr error
	wg.Go(func() { _, acceptErr = f.m.raft.Accept() })
	done := make(chan struct{})
	go func() { f.m.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		t.Fatal("Close did not return with a forwarding connection open")
	}
	wg.Wait()
	if !errors.Is(acceptErr, errLayerClosed) {
		t.Fatalf("Accept after Close: %v", acceptErr)
	}
	_ = fc.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := fc.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("forwarding connection after Close: %v, want closed", err)
	}
	if _, err := net.DialTimeout("tcp", f.addr, time.Second); err == nil {
		t.Fatal("listener still accepts after Close")
	}
}
