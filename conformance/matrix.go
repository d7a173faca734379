package conformance

import (
	"fmt"
	"sort"
	"sync"
	"testing"

	"github.com/corral-dev/corral/framework/plugin"
)

// Combination is one choice of consensus, storage and protocol plugin: the
// unit the matrix proves behaves as one ZooKeeper.
type Combination struct {
	Consensus plugin.ID // e.g. consensus.raft
	Storage   plugin.ID // e.g. storage.bolt
	Protocol  plugin.ID // e.g. protocol.native
}

// Name is "consensus/storage/protocol" in short names, e.g.
// "raft/bolt/native"; as a subtest name it can be selected level by level
// (-run 'TestConformanceMatrix/raft/pebble/native').
func (c Combination) Name() string {
	return fmt.Sprintf("%s/%s/%s", c.Consensus.Name(), c.Storage.Name(), c.Protocol.Name())
}

// Combinations returns every registered consensus x storage x protocol
// combination, sorted by name. It reads the plugin registry, so a plugin
// compiled in (plugins/all, or a vendor's own import) joins the matrix
// without any change here.
func Combinations() []Combination {
	var out []Combination
	for _, c := range plugin.List(plugin.KindConsensus) {
		for _, s := range plugin.List(plugin.KindStorage) {
			for _, p := range plugin.List(plugin.KindProtocol) {
				out = append(out, Combination{Consensus: c, Storage: s, Protocol: p})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name() < out[j].Name() })
	return out
}

// ClientSuite runs the client-level checks against servers reached through
// one protocol plugin; o.Servers are that protocol's listen addresses.
type ClientSuite func(t *testing.T, o ClientOptions)

var clientSuites = struct {
	sync.RWMutex
	m map[string]ClientSuite
}{m: map[string]ClientSuite{"native": RunClient}}

// RegisterClientSuite names the suite that drives a protocol plugin whose
// clients do not speak ZooKeeper's wire protocol (the native protocol uses
// RunClient through go-zookeeper). Call it from init in the package or test
// that brings the protocol in; the matrix fails a combination whose
// protocol has no suite rather than pass it unchecked.
func RegisterClientSuite(protocol string, run ClientSuite) {
	clientSuites.Lock()
	defer clientSuites.Unlock()
	clientSuites.m[protocol] = run
}

// ClientSuiteFor returns the client suite registered for a protocol's short
// name ("native", "grpc").
func ClientSuiteFor(protocol string) (ClientSuite, bool) {
	clientSuites.RLock()
	defer clientSuites.RUnlock()
	run, ok := clientSuites.m[protocol]
	return run, ok
}
