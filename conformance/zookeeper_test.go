package conformance_test

import (
	"testing"
	"time"

	"github.com/corral-dev/corral/conformance"
	"github.com/corral-dev/corral/conformance/zkref"
)

// TestConformanceZooKeeper runs the same client-level suite against Apache
// ZooKeeper 3.8 (Debian package): the suite's expectations are ZooKeeper's
// own behaviour, so a check that fails on Corral but passes here is a
// difference from ZooKeeper.
func TestConformanceZooKeeper(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: starts a JVM")
	}
	zkSrv := zkref.Start(t, zkref.Options{ContainerCheckInterval: 500 * time.Millisecond})
	conformance.RunClient(t, conformance.ClientOptions{Servers: []string{zkSrv.Addr()}, ReapWithin: 10 * time.Second})
}
