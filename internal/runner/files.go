package runner

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"

	"bulkgen/internal/runstate"
)

// intact reports whether the file exists inside root with the recorded
// hash: a missing, truncated or edited image is made again.
func intact(root *os.Root, name, sum string) bool {
	if name == "" || sum == "" {
		return false
	}
	f, err := root.Open(name)
	if err != nil {
		return false
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return false
	}
	return hex.EncodeToString(h.Sum(nil)) == sum
}

// ErrLocked is returned when another bulkgen is running on the same folder.
var ErrLocked = errors.New("another bulkgen run is using this output folder")

// lock takes an exclusive advisory lock on the output folder's state, so
// two runs cannot write the same files. The kernel drops the lock when the
// process dies, so a crash never leaves a stale lock behind.
func lock(outDir string) (func(), error) {
	dir := filepath.Join(outDir, runstate.Dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create state folder: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock output folder: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s: %w", outDir, ErrLocked)
		}
		return nil, fmt.Errorf("lock output folder: %w", err)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
