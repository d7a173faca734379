package main

import (
	"math/bits"
	"time"
)

// hist is a log-linear latency histogram in the spirit of HdrHistogram: each
// power-of-two range of nanoseconds is split into subCount equal buckets, so
// any recorded value is reported within 1/subCount (1.6%) of itself, with a
// fixed, small footprint and no allocation per sample. One per worker; merged
// at the end, so recording needs no lock.
type hist struct {
	counts [buckets]uint64
	total  uint64
	max    uint64
}

const (
	subBits  = 6
	subCount = 1 << subBits
	// Values up to 2^45 ns (~9.8 hours) fit; larger ones land in the last bucket.
	buckets = (45 - subBits + 1) * subCount
)

func bucketOf(v uint64) int {
	if v < subCount {
		return int(v)
	}
	shift := bits.Len64(v) - subBits - 1
	idx := (shift+1)*subCount + int(v>>uint(shift)) - subCount
	if idx >= buckets {
		return buckets - 1
	}
	return idx
}

// bucketValue is the midpoint of bucket idx, the value reported for it.
func bucketValue(idx int) uint64 {
	if idx < subCount {
		return uint64(idx)
	}
	shift := idx/subCount - 1
	top := uint64(idx%subCount + subCount)
	return top<<uint(shift) + (uint64(1)<<uint(shift))/2
}

func (h *hist) record(d time.Duration) {
	v := uint64(0)
	if d > 0 {
		v = uint64(d)
	}
	h.counts[bucketOf(v)]++
	h.total++
	if v > h.max {
		h.max = v
	}
}

func (h *hist) merge(o *hist) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.total += o.total
	if o.max > h.max {
		h.max = o.max
	}
}

// quantile returns the value at quantile q (0..1): the smallest bucket whose
// cumulative count reaches ceil(q*total).
func (h *hist) quantile(q float64) time.Duration {
	if h.total == 0 {
		return 0
	}
	rank := uint64(q*float64(h.total) + 0.999999)
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			v := bucketValue(i)
			if v > h.max {
				v = h.max
			}
			return time.Duration(v)
		}
	}
	return time.Duration(h.max)
}
