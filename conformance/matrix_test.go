package conformance_test

import (
	"testing"
	"time"

	"github.com/corral-dev/corral/conformance"
	"github.com/corral-dev/corral/conformance/corraltest"
	"github.com/corral-dev/corral/conformance/proccluster"
	"github.com/corral-dev/corral/framework/plugin"
	_ "github.com/corral-dev/corral/plugins/all"
)

// TestConformanceMatrix runs the client-level suite on every compiled-in
// consensus x storage x protocol combination, on a single in-process server
// and on a three-process ensemble with clients spread over all members;
// on both it then puts a concurrent write load through every member and
// checks that all members hold the same transactions in the same order.
func TestConformanceMatrix(t *testing.T) {
	combos := conformance.Combinations()
	// plugins/all holds at least one plugin of each kind; an empty matrix
	// would pass while checking nothing.
	if len(combos) == 0 {
		t.Fatalf("no combinations registered (consensus %v, storage %v, protocol %v)",
			plugin.List(plugin.KindConsensus), plugin.List(plugin.KindStorage), plugin.List(plugin.KindProtocol))
	}
	for _, combo := range combos {
		t.Run(combo.Name(), func(t *testing.T) {
			suite, ok := conformance.ClientSuiteFor(combo.Protocol.Name())
			if !ok {
				t.Fatalf("no client suite for protocol %q: register one with conformance.RegisterClientSuite", combo.Protocol.Name())
			}
			t.Run("1-member", func(t *testing.T) {
				start := time.Now()
				protocols := []any{map[string]any{"type": "native", "listen": "127.0.0.1:0"}}
				if combo.Protocol.Name() != "native" {
					protocols = append(protocols, map[string]any{"type": combo.Protocol.Name(), "listen": "127.0.0.1:0"})
				}
				srv := corraltest.Start(t, corraltest.Options{Overrides: map[string]any{
					"consensus": map[string]any{"type": combo.Consensus.Name()},
					"storage":   map[string]any{"type": combo.Storage.Name()},
					"protocols": protocols,
				}})
				addrs := srv.Addrs()
				t.Run("Client", func(t *testing.T) {
					suite(t, conformance.ClientOptions{Servers: []string{addrs[len(addrs)-1].String()}, ReapWithin: 5 * time.Second})
				})
				t.Run("Replication", func(t *testing.T) {
					conformance.RunReplication(t, conformance.ReplicaOptions{Servers: []string{srv.Addr}, SessionsPerMember: 3})
				})
				t.Logf("%s, 1 member: %s", combo.Name(), time.Since(start).Round(time.Millisecond))
			})
			t.Run("3-member", func(t *testing.T) {
				if testing.Short() {
					t.Skip("-short: starts three processes")
				}
				start := time.Now()
				// One ensemble for every check of this combination.
				c := proccluster.Start(t, 3, proccluster.Options{
					Consensus: "type: " + combo.Consensus.Name(),
					Storage:   "type: " + combo.Storage.Name(),
					Protocol:  combo.Protocol.Name(),
					Extra:     "container_check_interval: 200ms\n",
				})
				t.Logf("ensemble up in %s", time.Since(start).Round(time.Millisecond))
				t.Run("Client", func(t *testing.T) {
					suite(t, conformance.ClientOptions{Servers: c.ProtocolAddrs(), ReapWithin: 5 * time.Second})
				})
				t.Run("Replication", func(t *testing.T) {
					conformance.RunReplication(t, conformance.ReplicaOptions{Servers: c.ClientAddrs()})
				})
				t.Logf("%s, 3 members: %s", combo.Name(), time.Since(start).Round(time.Millisecond))
			})
		})
	}
}
