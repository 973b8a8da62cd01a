// Package fileblob is the blob.Store on a local folder, the default for a
// single machine. Writes go to a temporary file in the target's folder,
// are fsynced and renamed into place, and the folder is fsynced, so a crash
// leaves either the old object or the new one. Every path is resolved
// through an os.Root, so no key, symlink or race can reach outside the
// folder.
package fileblob

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	"bulkgen/internal/blob"
)

// Store is a blob.Store over one folder.
type Store struct {
	root *os.Root
	// dirs holds the folders known to exist. MkdirAll through an os.Root
	// opens every path component on each call, which made it the largest
	// part of a Put in `bulkgen bench serve`; key folders number 256 (and
	// at most 65,536 more of the earlier two-level layout), so remembering
	// them is cheap.
	dirs sync.Map // string → struct{}
}

// New opens (creating it if needed) the folder dir as a Store. Call Close
// when done.
func New(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("create blob folder: %w", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("open blob folder: %w", err)
	}
	return &Store{root: root}, nil
}

// Close releases the folder.
func (s *Store) Close() error { return s.root.Close() }

// Put implements blob.Store.
func (s *Store) Put(ctx context.Context, key string, r io.Reader) (err error) {
	if err := blob.ValidateKey(key); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	dir, name := path.Split(key)
	dir = path.Clean(dir)
	// Everything below happens inside the key's folder, opened once: an
	// os.Root resolves a multi-part path one component at a time, so
	// creating, renaming and syncing through the store's root took about
	// 25 system calls per image, this about a dozen.
	folder, err := s.openFolder(dir)
	if err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	defer folder.Close()
	// The temporary name starts with a dot, which no valid key does, so it
	// can never be mistaken for (or clash with) an object.
	var suffix [8]byte
	_, _ = rand.Read(suffix[:])
	tmp := tempPrefix + hex.EncodeToString(suffix[:])
	f, err := folder.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = folder.Remove(tmp)
		}
	}()
	if _, err = io.Copy(f, ctxReader{ctx, r}); err != nil {
		return fmt.Errorf("put %s: write: %w", key, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("put %s: sync: %w", key, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("put %s: close: %w", key, err)
	}
	if err = ctx.Err(); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	if err = folder.Rename(tmp, name); err != nil {
		return fmt.Errorf("put %s: rename: %w", key, err)
	}
	// The rename is durable only once the folder itself is synced.
	if err := syncFolder(folder); err != nil {
		return fmt.Errorf("put %s: sync folder: %w", key, err)
	}
	return nil
}

// openFolder opens dir as a root of its own, creating it first unless it
// is known to exist. A folder removed behind the store's back is created
// again.
func (s *Store) openFolder(dir string) (*os.Root, error) {
	if _, known := s.dirs.Load(dir); known {
		r, err := s.root.OpenRoot(dir)
		if !errors.Is(err, fs.ErrNotExist) {
			return r, err
		}
		s.dirs.Delete(dir)
	}
	if err := s.root.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	s.dirs.Store(dir, struct{}{})
	return s.root.OpenRoot(dir)
}

// syncFolder fsyncs the folder r is opened on.
func syncFolder(r *os.Root) error {
	d, err := r.Open(".")
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}

// Open implements blob.Store.
func (s *Store) Open(ctx context.Context, key string) (blob.Object, error) {
	if err := blob.ValidateKey(key); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("open %s: %w", key, err)
	}
	f, err := s.root.Open(key)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("open %s: %w", key, blob.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", key, err)
	}
	info, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("open %s: %w", key, err)
	}
	if !info.Mode().IsRegular() {
		_ = f.Close()
		return nil, fmt.Errorf("open %s: not a file: %w", key, blob.ErrNotFound)
	}
	return &object{File: f, info: info}, nil
}

// Delete implements blob.Store.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := blob.ValidateKey(key); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	if err := s.root.Remove(key); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	return nil
}

// DeleteIfOlder implements blob.AgeDeleter. It moves the object aside
// under a temporary name first (a rename is atomic), then decides on the
// moved file: one written before cutoff is removed; a younger one — a Put
// that renamed its file into place just before the move — is linked back
// under its key, unless another Put has put one there meanwhile. A Put
// that renames its file into place after the move is never touched. The
// key is missing only for the moment between the move and the link back.
func (s *Store) DeleteIfOlder(ctx context.Context, key string, cutoff time.Time) (bool, error) {
	if err := blob.ValidateKey(key); err != nil {
		return false, err
	}
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("delete %s: %w", key, err)
	}
	dir, name := path.Split(key)
	folder, err := s.root.OpenRoot(path.Clean(dir))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("delete %s: %w", key, err)
	}
	defer folder.Close()
	var suffix [8]byte
	_, _ = rand.Read(suffix[:])
	aside := tempPrefix + "del-" + hex.EncodeToString(suffix[:])
	if err := folder.Rename(name, aside); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		return false, fmt.Errorf("delete %s: %w", key, err)
	}
	info, err := folder.Stat(aside)
	if err != nil || !info.ModTime().Before(cutoff) {
		// Young (or of unknown age): it goes back. Link fails when a newer
		// Put has put the key there again, which holds the same bytes.
		if lerr := folder.Link(aside, name); lerr != nil && !errors.Is(lerr, fs.ErrExist) {
			err = errors.Join(err, fmt.Errorf("put back %s: %w", key, lerr))
		}
		if rerr := folder.Remove(aside); rerr != nil {
			err = errors.Join(err, rerr)
		}
		return false, err
	}
	if err := folder.Remove(aside); err != nil {
		return false, fmt.Errorf("delete %s: %w", key, err)
	}
	return true, nil
}

// tempPrefix starts the name of every temporary file Put writes.
const tempPrefix = ".tmp-"

// CleanTemps implements blob.TempCleaner: it removes the temporary files
// (tempPrefix) of Puts that died mid-write, once they are older than
// olderThan. A Put in progress keeps writing its file, so a young one is
// never touched.
func (s *Store) CleanTemps(ctx context.Context, olderThan time.Duration) (int, error) {
	cutoff := time.Now().Add(-olderThan)
	removed := 0
	err := s.walkFiles(ctx, func(name string, modTime time.Time, temp bool) error {
		if !temp || !modTime.Before(cutoff) {
			return nil
		}
		if err := s.root.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		removed++
		return nil
	})
	if err != nil {
		return removed, fmt.Errorf("clean temporary files: %w", err)
	}
	return removed, nil
}

// walkFiles calls visit for every regular file of the store's folder with
// its slash-separated name and modification time; temp says it is a
// temporary file of Put. Other dot-named files and dot folders are not the
// store's and are skipped, as are symlinks and entries removed while the
// walk goes on. fs.WalkDir holds one directory's names at a time, so
// memory stays flat however many files there are.
func (s *Store) walkFiles(ctx context.Context, visit func(name string, modTime time.Time, temp bool) error) error {
	return fs.WalkDir(s.root.FS(), ".", func(name string, d fs.DirEntry, err error) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err != nil {
			if name != "." && errors.Is(err, fs.ErrNotExist) {
				return nil // removed while the walk went on
			}
			return err
		}
		if name == "." {
			return nil
		}
		temp := strings.HasPrefix(d.Name(), tempPrefix)
		if strings.HasPrefix(d.Name(), ".") && (d.IsDir() || !temp) {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		return visit(name, info.ModTime(), temp)
	})
}

// List implements blob.Lister by walking the folder (walkFiles); the key
// layout ("ab/…") keeps each directory small. Temporary files, symlinks
// and names that are not valid keys are skipped: they are not objects this
// Store wrote.
func (s *Store) List(ctx context.Context, fn func(key string, modTime time.Time) error) error {
	err := s.walkFiles(ctx, func(name string, modTime time.Time, temp bool) error {
		if temp || blob.ValidateKey(name) != nil {
			return nil
		}
		if err := fn(name, modTime); err != nil {
			// Wrapped so that fs.SkipDir or fs.SkipAll from fn cannot be
			// taken for WalkDir's own controls and end the walk silently.
			return fnError{err}
		}
		return nil
	})
	if fe := (fnError{}); errors.As(err, &fe) {
		return fe.err
	}
	if err != nil {
		return fmt.Errorf("list blobs: %w", err)
	}
	return nil
}

// fnError carries the error of List's callback through fs.WalkDir.
type fnError struct{ err error }

func (e fnError) Error() string { return e.err.Error() }

// object is an open file with the stat taken at Open.
type object struct {
	*os.File
	info fs.FileInfo
}

func (o *object) Size() int64        { return o.info.Size() }
func (o *object) ModTime() time.Time { return o.info.ModTime() }

// ctxReader stops a copy once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// Interface guards.
var (
	_ blob.Store       = (*Store)(nil)
	_ blob.Lister      = (*Store)(nil)
	_ blob.TempCleaner = (*Store)(nil)
	_ blob.AgeDeleter  = (*Store)(nil)
	_ blob.Object      = (*object)(nil)
)
