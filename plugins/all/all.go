// Package all is the standard distribution: importing it compiles in every
// in-tree plugin (each registers itself from init).
package all

import (
	_ "github.com/corral-dev/corral/consensus-raft"
	_ "github.com/corral-dev/corral/protocol-native"
	_ "github.com/corral-dev/corral/storage-bolt"
	_ "github.com/corral-dev/corral/storage-pebble"
)
