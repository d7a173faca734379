package consensus

// AsyncProposer is an optional capability that lets the framework pipeline
// writes. ProposeAsync must not block on replication: it queues data and
// returns. Calls made in sequence are ordered: if two proposals both commit,
// the earlier call commits first. done is called exactly once, after the
// entry is applied locally (nil) or when it has failed, and must not block.
type AsyncProposer interface {
	ProposeAsync(data []byte, done func(error))
}
