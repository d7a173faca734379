package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/corral-dev/corral/conformance/zkref"
)

// sessionServer is the one member session i of a cell connects to: the
// servers in turn, so an ensemble's sessions spread evenly over it.
func sessionServer(servers []string, i int) string {
	return servers[i%len(servers)]
}

// serverRole is the Mode line of addr's srvr reply (leader, follower,
// observer, standalone), or "" when it does not answer one.
func serverRole(addr string) string {
	out, err := zkref.FourLetterWord(addr, "srvr", 2*time.Second)
	if err != nil {
		return ""
	}
	for _, l := range strings.Split(out, "\n") {
		if m, ok := strings.CutPrefix(l, "Mode: "); ok {
			return strings.TrimSpace(m)
		}
	}
	return ""
}

// orderByRole moves the leader of an ensemble to the end of its server
// list, keeping the order otherwise. Sessions go round-robin over the list,
// so a one-session cell talks to a follower on either system (Corral and
// ZooKeeper need not elect the same member), and the leader, which also
// orders every write, gets the fewest sessions. roles[i] belongs to the
// returned list; a member that does not answer srvr keeps its place.
func orderByRole(servers []string, role func(string) string) (ordered, roles []string) {
	var leaders, leaderRoles []string
	for _, s := range servers {
		r := role(s)
		if r == "leader" {
			leaders, leaderRoles = append(leaders, s), append(leaderRoles, r)
			continue
		}
		ordered, roles = append(ordered, s), append(roles, r)
	}
	return append(ordered, leaders...), append(roles, leaderRoles...)
}

// describeServers is "a (follower), b (leader)" for the progress output.
func describeServers(servers, roles []string) string {
	parts := make([]string, len(servers))
	for i, s := range servers {
		r := roles[i]
		if r == "" {
			r = "no srvr reply"
		}
		parts[i] = fmt.Sprintf("%s (%s)", s, r)
	}
	return strings.Join(parts, ", ")
}
