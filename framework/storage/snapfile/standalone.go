package snapfile

import (
	"bufio"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"

	"github.com/corral-dev/corral/framework/storage"
)

// maxIDLen bounds a standalone file's snapshot id, which the header stores
// with a u16 length.
const maxIDLen = 1 << 10

// WriteFile writes a standalone snapshot file at path: the layout of the
// files in a snapshot directory (see the package comment), keeping meta.ID,
// Index, Term and membership as given, with body streamed from body. The
// file appears only complete: it is written to path+".tmp", fsynced and
// renamed. An error from body (a store's reader failing its checksum at
// EOF, say) leaves no file. It returns meta with Size set.
func WriteFile(path string, meta storage.SnapshotMeta, body io.Reader) (storage.SnapshotMeta, error) {
	if len(meta.ID) > maxIDLen {
		return meta, fmt.Errorf("snapfile: snapshot id of %d bytes is too long", len(meta.ID))
	}
	if len(meta.Membership) > maxMetaLen-64-maxIDLen {
		return meta, fmt.Errorf("snapfile: membership of %d bytes is too large", len(meta.Membership))
	}
	meta.Size = 0
	tmp := path + tmpSuffix
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, filePerm)
	if err != nil {
		return meta, fmt.Errorf("snapfile: create %s: %w", tmp, err)
	}
	k := &sink{
		dir: filepath.Dir(path), meta: meta, f: f, tmp: tmp, final: path,
		w:   bufio.NewWriterSize(f, bufSize),
		crc: crc32.New(castagnoli),
	}
	if _, err := k.w.Write(encodeHeader(meta)); err != nil {
		k.abort()
		return meta, fmt.Errorf("snapfile: write %s: %w", tmp, err)
	}
	if _, err := io.Copy(k, body); err != nil {
		k.Cancel()
		return meta, err
	}
	if err := k.Close(); err != nil {
		return meta, err
	}
	meta.Size = k.n
	return meta, nil
}

// OpenFile opens a standalone snapshot file written by WriteFile, or a
// file copied out of a snapshot directory. Like Store.Open, the reader
// returns an error wrapping ErrCorrupt instead of io.EOF when the body does
// not match its checksum.
func OpenFile(path string) (storage.SnapshotMeta, io.ReadCloser, error) {
	f, err := os.Open(path)
	if err != nil {
		return storage.SnapshotMeta{}, nil, fmt.Errorf("snapfile: open %s: %w", path, err)
	}
	meta, t, err := readMetaFile(f, path, "")
	if err != nil {
		f.Close()
		return storage.SnapshotMeta{}, nil, err
	}
	return meta, newReader(f, path, meta, t), nil
}
