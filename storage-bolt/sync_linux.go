package storagebolt

import (
	"errors"
	"os"
	"syscall"
)

// fdatasync flushes f's data and only the metadata needed to read it back;
// in a preallocated segment that is no inode update at all.
func fdatasync(f *os.File) error {
	return fdCall(f, "fdatasync", func(fd int) error { return syscall.Fdatasync(fd) })
}

// preallocate reserves size bytes for f, so appends within them neither
// grow the file nor allocate blocks, and never-written space reads as
// zeros (which tells a torn write from a damaged record, see tornFrame).
// A filesystem without fallocate just grows the file as it is written.
func preallocate(f *os.File, size int64) error {
	err := fdCall(f, "fallocate", func(fd int) error { return syscall.Fallocate(fd, 0, 0, size) })
	if errors.Is(err, syscall.EOPNOTSUPP) || errors.Is(err, syscall.ENOSYS) {
		return nil
	}
	return err
}

func fdCall(f *os.File, op string, fn func(fd int) error) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var callErr error
	if err := rc.Control(func(fd uintptr) {
		for {
			// The Go runtime's preemption signals can interrupt the call.
			if callErr = fn(int(fd)); !errors.Is(callErr, syscall.EINTR) {
				return
			}
		}
	}); err != nil {
		return err
	}
	if callErr != nil {
		return &os.PathError{Op: op, Path: f.Name(), Err: callErr}
	}
	return nil
}
