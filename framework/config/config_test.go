package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/corral-dev/corral/framework/plugin"
)

// Test doubles: the real plugins live outside the framework.
type fakeCfg struct {
	Path string        `koanf:"path"`
	Sync bool          `koanf:"sync"`
	Wait time.Duration `koanf:"wait"`
	// Listen stands in for protocol.native's listen key.
	Listen string `koanf:"listen"`
}

type fakeFactory struct{ id plugin.ID }

func (f fakeFactory) ID() plugin.ID { return f.id }
func (f fakeFactory) DefaultConfig() any {
	return &fakeCfg{Path: "default", Sync: true, Wait: time.Second}
}

func init() {
	for _, id := range []plugin.ID{"consensus.raft", "storage.bolt", "storage.pebble", "protocol.native"} {
		plugin.Register(fakeFactory{id})
	}
}

func write(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "corral.yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDefaults(t *testing.T) {
	c, err := Load(Source{})
	if err != nil {
		t.Fatal(err)
	}
	if c.DataDir != "./data" || c.Consensus.Type != "raft" || c.Storage.Type != "bolt" || len(c.Protocols) != 1 || c.Protocols[0].Type != "native" {
		t.Fatalf("unexpected defaults: %+v", c)
	}
	// ZooKeeper's rule: session timeouts default to 2x and 20x tickTime.
	if c.MinSessionTimeout != 2*c.TickTime || c.MaxSessionTimeout != 20*c.TickTime {
		t.Fatalf("session timeouts %s/%s for tick %s", c.MinSessionTimeout, c.MaxSessionTimeout, c.TickTime)
	}
	if c.MaxRequestBytes != 1048575 {
		t.Fatalf("max_request_bytes %d, want jute.maxbuffer's 1048575", c.MaxRequestBytes)
	}
}

func TestSlotDecodesOverPluginDefaults(t *testing.T) {
	c, err := Load(Source{File: write(t, "storage:\n  type: pebble\n  sync: false\n")})
	if err != nil {
		t.Fatal(err)
	}
	sc := c.Storage.Config.(*fakeCfg)
	if c.Storage.Type != "pebble" || sc.Sync || sc.Path != "default" || sc.Wait != time.Second {
		t.Fatalf("storage slot %q %+v", c.Storage.Type, sc)
	}
}

func TestUnknownKeysAreErrorsNamingTheKey(t *testing.T) {
	cases := []struct{ name, body, key string }{
		{"top level", "data_dirr: /x\n", "data_dirr"},
		{"plugin slot", "storage:\n  type: bolt\n  pathh: /x\n", "pathh"},
		{"nested", "log:\n  colour: red\n", "colour"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Load(Source{File: write(t, c.body)})
			if err == nil {
				t.Fatal("config with an unknown key loaded")
			}
			if !strings.Contains(err.Error(), c.key) {
				t.Fatalf("error %q does not name key %q", err, c.key)
			}
		})
	}
}

func TestUnknownPluginListsValidNames(t *testing.T) {
	_, err := Load(Source{File: write(t, "storage:\n  type: rocks\n")})
	if err == nil || !strings.Contains(err.Error(), `"rocks"`) || !strings.Contains(err.Error(), "bolt, pebble") {
		t.Fatalf("err = %v", err)
	}
}

func TestEnvAndOverridePrecedence(t *testing.T) {
	file := write(t, "data_dir: /from-file\ntick_time: 3s\n")
	env := []string{"CORRAL_DATA_DIR=/from-env", "CORRAL_STORAGE__SYNC=false", "HOME=/root", "CORRAL_TEST_DOCKER=1"}
	c, err := Load(Source{File: file, Env: env, Overrides: map[string]any{"tick_time": "500ms"}})
	if err != nil {
		t.Fatal(err)
	}
	if c.DataDir != "/from-env" {
		t.Fatalf("data_dir %q: env should beat the file", c.DataDir)
	}
	if c.TickTime != 500*time.Millisecond {
		t.Fatalf("tick_time %s: flags should beat the file", c.TickTime)
	}
	if c.Storage.Config.(*fakeCfg).Sync {
		t.Fatal("CORRAL_STORAGE__SYNC=false did not reach the storage slot")
	}
}

// Inside a section an unknown environment key is as wrong as in a file.
func TestEnvUnknownKeyInSection(t *testing.T) {
	_, err := Load(Source{Env: []string{"CORRAL_STORAGE__SYNCC=false"}})
	if err == nil || !strings.Contains(err.Error(), "syncc") {
		t.Fatalf("err = %v, want an error naming syncc", err)
	}
}

func TestValidation(t *testing.T) {
	cases := map[string]string{
		"min above max":   "min_session_timeout: 10s\nmax_session_timeout: 5s\n",
		"node not member": "node_id: 3\nmembers:\n  - {id: 1, peer: 'a:1'}\n",
		"duplicate ids":   "members:\n  - {id: 1, peer: 'a:1'}\n  - {id: 1, peer: 'b:1'}\n",
		"bad log level":   "log:\n  level: loud\n",
		"no protocols":    "protocols: []\n",
	}
	for name, body := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := Load(Source{File: write(t, body)}); err == nil {
				t.Fatal("invalid config accepted")
			}
		})
	}
}

func TestZooCfg(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "myid"), []byte("2\n"), 0o644)
	zoo := `# a zoo.cfg
tickTime=2000
initLimit=10
dataDir=` + dir + `
clientPort=2281
clientPortAddress=127.0.0.1
maxClientCnxns=100
4lw.commands.whitelist=ruok, mntr
autopurge.purgeInterval=1
extendedTypesEnabled=true
server.1=127.0.0.1:2888:3888;2181
server.2=127.0.0.1:2889:3889;127.0.0.1:2182
server.3=127.0.0.1:2890:3890:observer;2183
metricsProvider.httpPort=7000
`
	over, warnings, err := ZooCfg(strings.NewReader(zoo))
	if err != nil {
		t.Fatal(err)
	}
	joined := strings.Join(warnings, "\n")
	for _, key := range []string{"initLimit", "autopurge.purgeInterval", "metricsProvider.httpPort"} {
		if !strings.Contains(joined, key) {
			t.Errorf("no warning names %s: %v", key, warnings)
		}
	}
	c, err := Load(Source{Overrides: over})
	if err != nil {
		t.Fatal(err)
	}
	if c.TickTime != 2*time.Second || c.DataDir != dir || c.MaxClientConns != 100 || c.NodeID != 2 {
		t.Fatalf("mapped config %+v", c)
	}
	if len(c.Members) != 3 || c.Members[1].ClientAddr != "127.0.0.1:2182" || c.Members[0].ClientAddr != "127.0.0.1:2181" || c.Members[2].Voter {
		t.Fatalf("members %+v", c.Members)
	}
	if strings.Join(c.FourLetterWords, ",") != "ruok,mntr" {
		t.Fatalf("4lw %v", c.FourLetterWords)
	}
	if _, _, err := ZooCfg(strings.NewReader("clientPort\n")); err == nil {
		t.Fatal("malformed zoo.cfg accepted")
	}
}

func TestEffectiveRoundTrip(t *testing.T) {
	c, err := Load(Source{})
	if err != nil {
		t.Fatal(err)
	}
	m := Effective(c)
	if m["storage"].(map[string]any)["type"] != "bolt" || m["tick_time"] != "2s" {
		t.Fatalf("effective %v", m)
	}
}
