package zkref

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestClientsScriptAgainstZooKeeper proves scripts/test-clients.sh against
// the real Apache ZooKeeper, so that when it runs against Corral a failure
// means Corral differs. It takes about half a minute (a JVM per zkCli call),
// so it runs only with CORRAL_TEST_CLIENTS=1:
//
//	CORRAL_TEST_CLIENTS=1 go test ./conformance/zkref -run TestClientsScriptAgainstZooKeeper -v
func TestClientsScriptAgainstZooKeeper(t *testing.T) {
	if os.Getenv("CORRAL_TEST_CLIENTS") != "1" {
		t.Skip("set CORRAL_TEST_CLIENTS=1 to run the zkCli/cli_mt/kazoo script against ZooKeeper (~30 s)")
	}
	// The script waits up to 20 s for container and TTL reaping; ZooKeeper's
	// default check interval is 60 s.
	s := Start(t, Options{ContainerCheckInterval: time.Second})
	script, err := filepath.Abs("../../scripts/test-clients.sh")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", script, s.Addr())
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var last string
	var failures []string
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		t.Log(line)
		if strings.HasPrefix(line, "FAIL ") {
			failures = append(failures, line)
		}
		if strings.TrimSpace(line) != "" {
			last = line
		}
	}
	waitErr := cmd.Wait()
	m := regexp.MustCompile(`^(\d+) passed, (\d+) failed$`).FindStringSubmatch(last)
	if m == nil {
		t.Fatalf("script did not print its summary; last line %q (exit: %v)", last, waitErr)
	}
	if waitErr != nil || m[2] != "0" || len(failures) > 0 {
		t.Fatalf("script against ZooKeeper: %s (exit: %v)\n%s", last, waitErr, strings.Join(failures, "\n"))
	}
	if m[1] == "0" {
		t.Fatal("no checks ran")
	}
}
