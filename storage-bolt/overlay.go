package storagebolt

import (
	"time"

	"github.com/corral-dev/corral/framework/storage/logfmt"
)

// gen is one generation of the overlay: the net effect of consecutive WAL
// records on the database, held in memory until a checkpoint writes it
// there. There are at most two: the active one the writer applies records
// to, and a frozen one a checkpoint is writing to bolt (read-only).
//
// Its effect on the database, applied in this order: delete log keys <=
// compactTo and >= truncFrom, put ents, put state. Every part is a blind
// write (none depends on what the database holds), so writing a generation
// whose records the database already has changes nothing.
//
// ents is always a suffix of the log (appends go at the end, truncation
// cuts a suffix, compaction a prefix), so with the log's bounds a read
// knows where each index lives: see Store.overlayEntry.
type gen struct {
	lo        uint64            // index of ents[0]
	ents      [][]byte          // logfmt-encoded entries, contiguous from lo
	state     map[string][]byte // logfmt-encoded state values
	compactTo uint64            // 0: none
	truncFrom uint64            // 0: none
	seq       uint64            // last record applied, 0: none
	bytes     int64             // memory held, roughly
	born      time.Time         // when the first record was applied
}

func newGen() *gen { return &gen{state: make(map[string][]byte)} }

func (g *gen) empty() bool { return g.seq == 0 }

func (g *gen) hi() uint64 { return g.lo + uint64(len(g.ents)) - 1 }

func (g *gen) has(i uint64) bool { return len(g.ents) > 0 && i >= g.lo && i <= g.hi() }

// apply applies record o, checked into plan p. The caller holds the
// store's lock.
func (g *gen) apply(o *walOp, p logfmt.Plan) {
	if g.seq == 0 {
		g.born = time.Now()
	}
	g.seq = o.seq
	g.bytes += o.memSize()
	if !p.Delete.Empty() {
		if o.compact {
			h := p.Delete.Hi
			g.compactTo = max(g.compactTo, h)
			if len(g.ents) > 0 && h >= g.lo {
				// Copy down, so the dropped entries are freed.
				n := copy(g.ents, g.ents[min(h-g.lo+1, uint64(len(g.ents))):])
				clear(g.ents[n:])
				g.ents = g.ents[:n]
				g.lo = h + 1
			}
		} else {
			t := p.Delete.Lo
			if g.truncFrom == 0 || t < g.truncFrom {
				g.truncFrom = t
			}
			if len(g.ents) > 0 && t <= g.hi() {
				k := uint64(0)
				if t > g.lo {
					k = t - g.lo
				}
				clear(g.ents[k:])
				g.ents = g.ents[:k]
			}
		}
	}
	if len(o.ents) > 0 {
		if len(g.ents) == 0 {
			g.lo = o.first
		}
		g.ents = append(g.ents, o.ents...)
	}
	for i, k := range o.keys {
		g.state[k] = o.vals[i]
	}
}
