package tree

import (
	"bytes"
	"runtime"
	"strconv"
	"testing"

	"github.com/corral-dev/corral/framework/op"
)

var benchData = []byte("0123456789abcdef")

// benchTree holds parents × children small nodes: /pNNN/nNNN with 16 bytes.
func benchTree(tb testing.TB, parents, children int) (*Tree, []string) {
	tr := New(Options{})
	z := int64(1)
	paths := make([]string, 0, parents*children)
	for p := 0; p < parents; p++ {
		parent := "/p" + strconv.Itoa(p)
		if _, _, err := tr.Apply(Ctx{Zxid: z}, &op.CreateRequest{Path: parent, ACL: open}); err != nil {
			tb.Fatal(err)
		}
		z++
		for c := 0; c < children; c++ {
			path := parent + "/n" + strconv.Itoa(c)
			if _, _, err := tr.Apply(Ctx{Zxid: z, Time: z}, &op.CreateRequest{Path: path, ACL: open, Data: benchData}); err != nil {
				tb.Fatal(err)
			}
			z++
			paths = append(paths, path)
		}
	}
	return tr, paths
}

func BenchmarkCreate(b *testing.B) {
	tr, _ := benchTree(b, 100, 0)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		path := "/p" + strconv.Itoa(i%100) + "/c" + strconv.Itoa(i)
		if _, _, err := tr.Apply(Ctx{Zxid: int64(i + 1000)}, &op.CreateRequest{Path: path, ACL: open, Data: benchData}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGetData(b *testing.B) {
	tr, paths := benchTree(b, 100, 1000)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := tr.Read(Auth{}, 0, &op.GetDataRequest{Path: paths[(i*7919)%len(paths)]}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSetData(b *testing.B) {
	tr, paths := benchTree(b, 100, 1000)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		req := &op.SetDataRequest{Path: paths[(i*7919)%len(paths)], Data: benchData, Version: -1}
		if _, _, err := tr.Apply(Ctx{Zxid: int64(i + 1_000_000)}, req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMemoryPerNode reports the live heap per node for 1M small nodes
// (names of 2-7 bytes, 16 bytes of data, open ACL), built with one Apply
// per node.
func BenchmarkMemoryPerNode(b *testing.B) {
	for _, shape := range []struct {
		name              string
		parents, children int
	}{{"1000x1000", 1000, 1000}, {"flat-1M", 1, 1_000_000}} {
		b.Run(shape.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				tr, paths := benchTree(b, shape.parents, shape.children)
				paths = nil
				runtime.GC()
				runtime.ReadMemStats(&after)
				n, _, _ := tr.Counts()
				b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(n), "bytes/node")
				runtime.KeepAlive(tr)
				_ = paths
			}
		})
	}
}

func BenchmarkSnapshotWriteRestore100k(b *testing.B) {
	tr, _ := benchTree(b, 100, 1000)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var buf bytes.Buffer
		if _, err := tr.Snapshot().WriteTo(&buf); err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(buf.Len()))
		back := New(Options{})
		if err := back.Restore(&buf); err != nil {
			b.Fatal(err)
		}
	}
}
