//go:build linux

package netcluster

import (
	"os/exec"
	"strings"
	"testing"
	"time"
)

// A partition cuts the member off from the test process but not from
// itself, Heal restores it, and the cleanup leaves no namespace or link of
// the run behind.
func TestPartitionHealTeardown(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: starts three processes in network namespaces")
	}
	var names []string
	var rootLink string
	t.Run("cluster", func(t *testing.T) {
		c := Start(t, 3, Options{})
		names = append(names, c.Hub)
		for _, m := range c.Members {
			names = append(names, m.NS)
		}
		rootLink = c.net.rootLink
		m := c.Members[0]
		if mode := m.Mode(); mode != "leader" && mode != "follower" {
			t.Fatalf("member %d mode %q before the cut", m.ID, mode)
		}
		m.Partition()
		if _, err := c.Dial("tcp", m.ClientAddr, 500*time.Millisecond); err == nil {
			t.Fatalf("dialled member %d while it is cut off", m.ID)
		}
		if out, err := m.FourLetterInside("ruok"); err != nil || out != "imok" {
			t.Fatalf("ruok from inside the cut-off member: %q %v", out, err)
		}
		m.Heal()
		deadline := time.Now().Add(5 * time.Second)
		for {
			if out, err := m.FourLetter("ruok"); err == nil && out == "imok" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("member %d unreachable 5s after healing", m.ID)
			}
			time.Sleep(50 * time.Millisecond)
		}
		// The dialer refuses anything but member addresses.
		for _, addr := range []string{"127.0.0.1:2181", "192.0.2.1:2181", hostIP.String() + ":2181"} {
			if _, err := c.Dial("tcp", addr, time.Second); err == nil || !strings.Contains(err.Error(), "refusing") {
				t.Fatalf("Dial(%s): %v, want a refusal", addr, err)
			}
		}
	})
	if len(names) == 0 {
		t.Skip("the cluster subtest ended before the network existed (see its message)")
	}
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns list: %v: %s", err, out)
	}
	for _, n := range names {
		if strings.Contains(string(out), n) {
			t.Errorf("namespace %s left behind", n)
		}
	}
	if err := exec.Command("ip", "link", "show", rootLink).Run(); err == nil {
		t.Errorf("root-side link %s left behind", rootLink)
	}
	if s, err := inUse(); err != nil || s != "" {
		t.Errorf("%s still configured in the root namespace: %q %v", Subnet, s, err)
	}
}
