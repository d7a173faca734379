package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCmd(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestPluginsListsCompiledIn(t *testing.T) {
	code, out, _ := runCmd("plugins")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, id := range []string{"consensus.raft", "protocol.native", "storage.bolt", "storage.pebble"} {
		if !strings.Contains(out, id+"\n") {
			t.Fatalf("plugins output lacks %s:\n%s", id, out)
		}
	}
}

func TestConfigDefaultAndValidate(t *testing.T) {
	code, out, errOut := runCmd("config", "default")
	if code != 0 || !strings.Contains(out, "type: bolt") || !strings.Contains(out, "type: raft") {
		t.Fatalf("config default: exit %d\n%s\n%s", code, out, errOut)
	}
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("storage:\n  type: bolt\n  fsync_everything: true\n"), 0o644)
	code, _, errOut = runCmd("config", "validate", "--config", bad)
	if code == 0 || !strings.Contains(errOut, "fsync_everything") {
		t.Fatalf("invalid config: exit %d, stderr %q", code, errOut)
	}
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte("storage:\n  type: pebble\n"), 0o644)
	code, out, errOut = runCmd("config", "validate", "--config", good)
	if code != 0 || !strings.Contains(out, "type: pebble") {
		t.Fatalf("valid config: exit %d\n%s\n%s", code, out, errOut)
	}
}

func TestZooCfgWarnsByName(t *testing.T) {
	dir := t.TempDir()
	zoo := filepath.Join(dir, "zoo.cfg")
	os.WriteFile(zoo, []byte("tickTime=2000\ndataDir="+dir+"\nclientPort=2199\nsnapCount=1000\n"), 0o644)
	code, out, errOut := runCmd("config", "validate", "--zoo-cfg", zoo)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(errOut, "snapCount") {
		t.Fatalf("no warning naming snapCount: %q", errOut)
	}
	if !strings.Contains(out, "127.0.0.1:2199") || !strings.Contains(out, "data_dir: "+dir) {
		t.Fatalf("zoo.cfg not mapped:\n%s", out)
	}
}

func TestUnknownCommand(t *testing.T) {
	if code, _, _ := runCmd("frobnicate"); code != 2 {
		t.Fatalf("exit %d, want 2", code)
	}
}
