package consensusraft

import (
	"context"
	"sync"
	"testing"
)

// Benchmarks on a 3-member cluster on loopback with memstore (in memory,
// no fsync), so they measure the consensus and forwarding path, not a disk.
// The Leader/Follower pairs differ only in which member the call is made on.

func benchNode(b *testing.B, leader bool) *node {
	nodes := startCluster(b, 3, DefaultConfig())
	if leader {
		return nodes[0]
	}
	return nodes[1]
}

// benchPropose: one proposal at a time; ns/op is the latency.
func benchPropose(b *testing.B, leader bool) {
	n := benchNode(b, leader)
	data := make([]byte, 128)
	ctx := context.Background()
	for b.Loop() {
		if err := n.r.Propose(ctx, data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkProposeLeader(b *testing.B)   { benchPropose(b, true) }
func BenchmarkProposeFollower(b *testing.B) { benchPropose(b, false) }

// benchProposeAsync keeps 256 proposals in flight; ns/op is the inverse of
// the throughput.
func benchProposeAsync(b *testing.B, leader bool) {
	n := benchNode(b, leader)
	data := make([]byte, 128)
	window := make(chan struct{}, 256)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for b.Loop() {
		window <- struct{}{}
		wg.Add(1)
		n.r.ProposeAsync(data, func(err error) {
			if err != nil {
				mu.Lock()
				firstErr = err
				mu.Unlock()
			}
			<-window
			wg.Done()
		})
	}
	wg.Wait()
	if firstErr != nil {
		b.Fatal(firstErr)
	}
}

func BenchmarkProposeAsyncLeader(b *testing.B)   { benchProposeAsync(b, true) }
func BenchmarkProposeAsyncFollower(b *testing.B) { benchProposeAsync(b, false) }

// benchReadBarrier: one barrier at a time after a write, so each has
// something to wait for.
func benchReadBarrier(b *testing.B, leader bool) {
	n := benchNode(b, leader)
	ctx := context.Background()
	if err := n.r.Propose(ctx, []byte("x")); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if err := n.r.ReadBarrier(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReadBarrierLeader(b *testing.B)   { benchReadBarrier(b, true) }
func BenchmarkReadBarrierFollower(b *testing.B) { benchReadBarrier(b, false) }
