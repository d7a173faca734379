package server

import (
	"io/fs"
	"os"
	"path/filepath"
)

// zkCompatVersion is the ZooKeeper version whose behaviour Corral matches;
// tools such as kazoo parse it from srvr.
const zkCompatVersion = "3.9.3"

// buildDate is printed where ZooKeeper prints its build date.
var buildDate = "01/01/2026 00:00 GMT"

func dirSize(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}

func openFDs() int {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(entries)
}
