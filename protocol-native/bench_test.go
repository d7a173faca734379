package protocolnative

import (
	"testing"

	"github.com/corral-dev/corral/framework/op"
	"github.com/corral-dev/corral/framework/zkerr"
)

func BenchmarkDecodeGetDataRequest(b *testing.B) {
	framed, err := appendRequest(nil, 42, &op.GetDataRequest{Path: "/bench/node-000001", Watch: true})
	if err != nil {
		b.Fatal(err)
	}
	frame := framed[4:]
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		if _, _, err := decodeRequest(frame); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeGetDataResponse(b *testing.B) {
	resp := &op.GetDataResponse{Data: make([]byte, 128), Stat: testStat}
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		buf, err = appendReply(buf[:0], 42, 0x100000001, zkerr.OK, resp)
		if err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(buf)))
}

// BenchmarkConnReplyGetData measures the path the backend calls: Reply
// encoding into the connection's queue (the writer is not running, so the
// queue is reset by hand as the writer's swap would).
func BenchmarkConnReplyGetData(b *testing.B) {
	f := NewFrontend(*DefaultConfig(), nil)
	c := &conn{f: f, wake: make(chan struct{}, 1)}
	resp := &op.GetDataResponse{Data: make([]byte, 128), Stat: testStat}
	b.ReportAllocs()
	for b.Loop() {
		c.Reply(42, 7, zkerr.OK, resp)
		c.mu.Lock()
		c.out = c.out[:0]
		c.mu.Unlock()
	}
}
