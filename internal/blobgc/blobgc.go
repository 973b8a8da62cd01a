// Package blobgc removes image files that no image row references.
//
// An image job writes its file to the blob store and then records the image
// in the database. A process that dies between the two leaves a file that
// nothing points at. Noting every key in the database before writing it
// would cost one more write per image, so instead a sweeper lists the store
// now and then and deletes the files that are old and unreferenced.
//
// Why "old": between its Put and its commit, a running job holds a file that
// no row references yet. Only files last written more than a grace period
// ago are candidates, so the grace period must exceed the longest a job can
// take from Put to commit (the job timeout bounds that).
//
// Keys are content addresses, so a new job may Put the very bytes that an
// old orphan holds. That Put rewrites the file and makes it young again. For
// this reason the sweeper checks a file's age once more right before it
// deletes the file. A Put that lands between that check and the Delete can
// still lose its file. The window is one Open and one Delete wide, and
// `bulkgen admin check-batch` reports an image whose file is missing.
//
// Only content-addressed image keys (blob.KeyFor) are considered. Any other
// object a store comes to hold, such as an export, is never touched.
package blobgc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"strings"
	"time"

	"bulkgen/internal/blob"
	"bulkgen/internal/store"
)

// DefaultGrace is the least age of a file that Sweep may delete. It is also
// the grace period used when none is given.
const DefaultGrace = time.Hour

// chunkSize is the number of candidate keys checked against the database in
// one go. Candidates wait in memory only until a chunk is full, so a sweep
// of millions of files holds no more than this many keys.
const chunkSize = 500

// firstDelay is how long Run waits before its first sweep (or interval, if
// that is shorter). The delay keeps the sweep out of the way of start-up.
const firstDelay = time.Minute

// ErrNotListable is returned by Sweep for a blob store that does not
// implement blob.Lister. Such a store cannot be swept.
var ErrNotListable = errors.New("blobgc: the blob store cannot list its objects")

// Result counts what one sweep saw and did.
type Result struct {
	// Scanned is the number of objects listed.
	Scanned int
	// Old is the number of image files last written before the grace
	// period: the ones checked against the database.
	Old int
	// Removed is the number of files deleted because no image row
	// references them.
	Removed int
	// Bytes is the total size of the removed files.
	Bytes int64
	// Failed is the number of unreferenced files that could not be
	// deleted. Each failure is logged at Warn.
	Failed int
	// Temps is the number of temporary files of interrupted writes
	// removed (stores that implement blob.TempCleaner).
	Temps int
}

// Sweep deletes the image files in blobs that were last written more than
// grace ago and that no image row in db references. A grace of zero or
// less means DefaultGrace. Sweep returns ErrNotListable when blobs is not a
// blob.Lister. A done ctx stops the sweep. The Result counts the work done
// so far, also when Sweep returns an error.
func Sweep(ctx context.Context, db *store.DB, blobs blob.Store, grace time.Duration, logger *slog.Logger) (Result, error) {
	l, ok := blobs.(blob.Lister)
	if !ok {
		return Result{}, fmt.Errorf("%w (%T)", ErrNotListable, blobs)
	}
	if grace <= 0 {
		grace = DefaultGrace
	}
	s := &sweep{db: db, blobs: blobs, cutoff: time.Now().Add(-grace), logger: orDiscard(logger)}
	keys := make([]string, 0, chunkSize)
	err := l.List(ctx, func(key string, modTime time.Time) error {
		s.res.Scanned++
		if !modTime.Before(s.cutoff) || !isImageKey(key) {
			return nil
		}
		s.res.Old++
		keys = append(keys, key)
		if len(keys) < chunkSize {
			return nil
		}
		err := s.removeUnreferenced(ctx, keys)
		keys = keys[:0]
		return err
	})
	if err == nil {
		err = s.removeUnreferenced(ctx, keys)
	}
	if tc, ok := blobs.(blob.TempCleaner); ok && err == nil {
		s.res.Temps, err = tc.CleanTemps(ctx, grace)
	}
	if err != nil {
		return s.res, fmt.Errorf("sweep blobs: %w", err)
	}
	return s.res, nil
}

// sweep is the state of one Sweep.
type sweep struct {
	db     *store.DB
	blobs  blob.Store
	cutoff time.Time // files written before this are old
	logger *slog.Logger
	res    Result
}

// removeUnreferenced deletes those of keys that no image row references
// and that are still old.
func (s *sweep) removeUnreferenced(ctx context.Context, keys []string) error {
	if len(keys) == 0 {
		return nil
	}
	unused, err := s.db.UnreferencedBlobKeys(ctx, s.db.Reader(), keys)
	if err != nil {
		return err
	}
	for _, key := range unused {
		if err := ctx.Err(); err != nil {
			return err
		}
		size, removed, err := s.removeIfOld(ctx, key)
		switch {
		case err != nil && ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			// One file that cannot be deleted (permissions, say) must not
			// keep the sweep from every file after it.
			s.res.Failed++
			s.logger.WarnContext(ctx, "cannot remove orphaned image file", "key", key, "err", err)
		case removed:
			s.res.Removed++
			s.res.Bytes += size
			s.logger.DebugContext(ctx, "removed orphaned image file", "key", key, "bytes", size)
		}
	}
	return nil
}

// removeIfOld deletes key unless it is gone or has been written since the
// listing. A new Put of the same bytes makes the file young, and its job
// is about to record it. A store that can delete on a condition
// (blob.AgeDeleter) decides atomically; for another, a Put landing between
// the check and the Delete would be lost with the old file.
func (s *sweep) removeIfOld(ctx context.Context, key string) (size int64, removed bool, err error) {
	if ad, ok := s.blobs.(blob.AgeDeleter); ok {
		obj, err := s.blobs.Open(ctx, key)
		if errors.Is(err, blob.ErrNotFound) {
			return 0, false, nil
		}
		if err != nil {
			return 0, false, err
		}
		size = obj.Size()
		if err := obj.Close(); err != nil {
			return 0, false, fmt.Errorf("close %s: %w", key, err)
		}
		removed, err := ad.DeleteIfOlder(ctx, key, s.cutoff)
		return size, removed, err
	}
	obj, err := s.blobs.Open(ctx, key)
	if errors.Is(err, blob.ErrNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	modTime, size := obj.ModTime(), obj.Size()
	if err := obj.Close(); err != nil {
		return 0, false, fmt.Errorf("close %s: %w", key, err)
	}
	if !modTime.Before(s.cutoff) {
		return 0, false, nil
	}
	if err := s.blobs.Delete(ctx, key); err != nil {
		return 0, false, err
	}
	return size, true, nil
}

// isImageKey reports whether key has the shape blob.KeyFor gives an image
// file, "ab/<sha256>.<ext>", or had under the earlier two-level layout,
// "ab/cd/<sha256>.<ext>".
func isImageKey(key string) bool {
	sum, ext, ok := strings.Cut(path.Base(key), ".")
	k := blob.KeyFor(sum, ext)
	if !ok || k == "" {
		return false
	}
	// Both shapes are built from KeyFor's own (lower-case) name, so a key
	// in another case never matches.
	name := k[3:] // "<sha256>.<ext>"
	return key == k || key == name[0:2]+"/"+name[2:4]+"/"+name
}

// Run calls Sweep once shortly after it starts (after a minute, or after
// interval if that is shorter) and then every interval, until ctx is done.
// It logs each sweep that removed something at Info and each failure at
// Warn. It returns at once when interval is zero or less, and it returns
// after one warning when blobs cannot be listed.
func Run(ctx context.Context, interval time.Duration, db *store.DB, blobs blob.Store, grace time.Duration, logger *slog.Logger) {
	if interval <= 0 {
		return
	}
	logger = orDiscard(logger)
	if _, ok := blobs.(blob.Lister); !ok {
		logger.WarnContext(ctx, "the blob store cannot list its objects; orphaned image files will not be removed",
			"store", fmt.Sprintf("%T", blobs))
		return
	}
	timer := time.NewTimer(min(firstDelay, interval))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		start := time.Now()
		res, err := Sweep(ctx, db, blobs, grace, logger)
		attrs := []any{"scanned", res.Scanned, "old", res.Old, "removed", res.Removed, "bytes", res.Bytes,
			"failed", res.Failed, "temps", res.Temps, "took", time.Since(start)}
		switch {
		case ctx.Err() != nil:
			return // shutting down: an interrupted sweep is no failure
		case err != nil:
			logger.WarnContext(ctx, "sweeping orphaned image files failed", append(attrs, "err", err)...)
		case res.Removed > 0 || res.Temps > 0:
			logger.InfoContext(ctx, "removed orphaned image files", attrs...)
		default:
			logger.DebugContext(ctx, "no orphaned image files", attrs...)
		}
		timer.Reset(interval)
	}
}

func orDiscard(logger *slog.Logger) *slog.Logger {
	if logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return logger
}
