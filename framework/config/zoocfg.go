package config

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// ZooCfg maps a ZooKeeper zoo.cfg onto Corral's configuration keys, so a
// ZooKeeper user can start Corral with the file they already have. It
// returns the overrides and one warning per key Corral does not support.
func ZooCfg(r io.Reader) (map[string]any, []string, error) {
	props := map[string]string{}
	var order []string
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		k, v, ok := strings.Cut(text, "=")
		if !ok {
			return nil, nil, fmt.Errorf("zoo.cfg line %d: want key=value, got %q", line, text)
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if _, dup := props[k]; !dup {
			order = append(order, k)
		}
		props[k] = v
	}
	if err := sc.Err(); err != nil {
		return nil, nil, err
	}

	out := map[string]any{}
	var warnings []string
	ms := func(key, target string) error {
		n, err := strconv.Atoi(props[key])
		if err != nil {
			return fmt.Errorf("zoo.cfg %s: %q is not a number", key, props[key])
		}
		out[target] = fmt.Sprintf("%dms", n)
		return nil
	}
	integer := func(key, target string) error {
		n, err := strconv.Atoi(props[key])
		if err != nil {
			return fmt.Errorf("zoo.cfg %s: %q is not a number", key, props[key])
		}
		out[target] = n
		return nil
	}
	var members []any
	port, addr := "2181", "127.0.0.1"
	for _, k := range order {
		v := props[k]
		var err error
		switch {
		case k == "clientPort":
			port = v
		case k == "clientPortAddress":
			addr = v
		case k == "dataDir":
			out["data_dir"] = v
		case k == "tickTime":
			err = ms(k, "tick_time")
		case k == "minSessionTimeout":
			err = ms(k, "min_session_timeout")
		case k == "maxSessionTimeout":
			err = ms(k, "max_session_timeout")
		case k == "maxClientCnxns":
			err = integer(k, "max_client_conns")
		case k == "jute.maxbuffer":
			err = integer(k, "max_request_bytes")
		case k == "znode.container.checkIntervalMs":
			err = ms(k, "container_check_interval")
		case k == "4lw.commands.whitelist":
			var words []any
			for _, w := range strings.Split(v, ",") {
				if w = strings.TrimSpace(w); w != "" {
					words = append(words, w)
				}
			}
			out["four_letter_words"] = words
		case k == "extendedTypesEnabled" || k == "zookeeper.extendedTypesEnabled":
			out["extended_types"] = v == "true"
		case k == "reconfigEnabled":
			out["reconfig_enabled"] = v == "true"
		case k == "DigestAuthenticationProvider.superDigest" || k == "zookeeper.DigestAuthenticationProvider.superDigest":
			out["super_digest"] = v
		case strings.HasPrefix(k, "server."):
			m, perr := parseServerLine(k, v)
			if perr != nil {
				err = perr
				break
			}
			members = append(members, m)
		case k == "autopurge.snapRetainCount" || k == "autopurge.purgeInterval":
			warnings = append(warnings, fmt.Sprintf("zoo.cfg key %s ignored: Corral compacts its log and prunes snapshots automatically", k))
		case k == "dataLogDir":
			warnings = append(warnings, fmt.Sprintf("zoo.cfg key %s ignored: Corral keeps everything under dataDir (the storage plugin's path can point elsewhere)", k))
		case k == "initLimit" || k == "syncLimit" || k == "electionAlg" || k == "standaloneEnabled" || k == "quorumListenOnAllIPs":
			warnings = append(warnings, fmt.Sprintf("zoo.cfg key %s ignored: Corral's consensus plugin has its own timing settings", k))
		default:
			warnings = append(warnings, fmt.Sprintf("zoo.cfg key %s is not supported by Corral and was ignored", k))
		}
		if err != nil {
			return nil, nil, err
		}
	}
	if _, err := strconv.Atoi(port); err != nil {
		return nil, nil, fmt.Errorf("zoo.cfg clientPort: %q is not a number", port)
	}
	out["protocols"] = []any{map[string]any{"type": "native", "listen": net.JoinHostPort(addr, port)}}
	if len(members) > 0 {
		sort.Slice(members, func(i, j int) bool {
			return members[i].(map[string]any)["id"].(uint64) < members[j].(map[string]any)["id"].(uint64)
		})
		out["members"] = members
		if dir, ok := out["data_dir"].(string); ok {
			if b, err := os.ReadFile(filepath.Join(dir, "myid")); err == nil {
				id, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
				if err != nil {
					return nil, nil, fmt.Errorf("%s: not a server id", filepath.Join(dir, "myid"))
				}
				out["node_id"] = id
			}
		}
	}
	return out, warnings, nil
}

// parseServerLine reads server.N=host:quorumPort:electionPort[:role][;[clientAddr:]clientPort].
func parseServerLine(key, v string) (map[string]any, error) {
	id, err := strconv.ParseUint(strings.TrimPrefix(key, "server."), 10, 64)
	if err != nil || id == 0 {
		return nil, fmt.Errorf("zoo.cfg %s: bad server id", key)
	}
	peerPart, clientPart, _ := strings.Cut(v, ";")
	fields := strings.Split(peerPart, ":")
	if len(fields) < 2 {
		return nil, fmt.Errorf("zoo.cfg %s: want host:quorumPort:electionPort, got %q", key, v)
	}
	m := map[string]any{"id": id, "peer": net.JoinHostPort(fields[0], fields[1]), "voter": true}
	if len(fields) >= 4 && fields[3] == "observer" {
		m["voter"] = false
	}
	if clientPart != "" {
		if !strings.Contains(clientPart, ":") {
			clientPart = net.JoinHostPort(fields[0], clientPart)
		}
		m["client"] = clientPart
	}
	return m, nil
}
