// Package blob defines where image bytes live: the Store interface every
// backend implements (a local folder in fileblob, an S3 bucket in s3blob),
// its errors, the optional Presigner and Lister capabilities, and the
// content-addressed key scheme.
//
// Keys are relative, slash-separated paths made of [A-Za-z0-9._-] segments;
// no segment is empty, "." or "..", or starts with a dot (backends keep
// their temporary files under dot names). ValidateKey enforces this, and
// every Store refuses other keys with ErrInvalidKey before touching storage.
package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// ErrNotFound is returned (wrapped) by Open for a key that holds no object.
var ErrNotFound = errors.New("blob: not found")

// ErrInvalidKey is returned (wrapped) for a key that ValidateKey refuses.
var ErrInvalidKey = errors.New("blob: invalid key")

// Store keeps objects under keys.
type Store interface {
	// Put stores everything read from r under key, atomically: a reader
	// sees either the old object or the whole new one, never a part. Putting
	// a key that exists replaces it, so repeating a Put is harmless. An
	// error from r, or a done ctx, leaves the key as it was.
	Put(ctx context.Context, key string, r io.Reader) error

	// Open returns the object under key for reading, with random access for
	// HTTP range requests. It returns ErrNotFound when there is none. The
	// caller must Close the object.
	Open(ctx context.Context, key string) (Object, error)

	// Delete removes the object under key. Deleting a key that holds no
	// object is not an error.
	Delete(ctx context.Context, key string) error
}

// Object is an open stored object. It can be handed straight to
// http.ServeContent.
type Object interface {
	io.ReadSeekCloser
	// Size is the object's length in bytes.
	Size() int64
	// ModTime is when the object was last written.
	ModTime() time.Time
}

// Presigner is the optional capability of a Store whose objects can be
// fetched directly by a browser (S3). Callers find it with a type assertion
// and fall back to serving the bytes themselves.
type Presigner interface {
	// PresignGet returns a URL that lets anyone holding it read key until
	// ttl has passed.
	PresignGet(ctx context.Context, key string, ttl time.Duration) (string, error)
}

// Lister is the optional capability of a Store that can enumerate its
// objects, which is what finding orphaned files (internal/blobgc) needs.
// Callers find it with a type assertion; a Store without it simply cannot
// be swept. fileblob walks its folder; s3blob pages through
// ListObjectsV2.
type Lister interface {
	// List calls fn once for every stored object, with its key and the time
	// it was last written (as Object.ModTime reports it, so a Put that
	// replaces an object makes it fresh again). Only keys ValidateKey
	// accepts are reported, never a backend's temporary files. The order is
	// unspecified, and objects put or deleted during the walk may or may
	// not be seen. List streams: it does not hold every key in memory, and
	// fn may Open or Delete objects while the walk goes on.
	//
	// If fn returns an error, the walk stops and List returns that error.
	// A done ctx stops the walk with an error wrapping ctx's.
	List(ctx context.Context, fn func(key string, modTime time.Time) error) error
}

// AgeDeleter is the optional capability of a Store that can delete an
// object only if nothing has written it since a given time, atomically
// with respect to Put. The blob sweeper (package blobgc) deletes through it
// when it can: between its check of an object's age and a plain Delete, a
// Put of the same key (the same content, which is how keys are made) could
// land and be deleted with the old one, losing the file of an image about
// to be recorded. A store without it is swept with a check, then a Delete.
type AgeDeleter interface {
	// DeleteIfOlder deletes the object under key when it was last written
	// before cutoff, and reports whether it did. A missing key is not an
	// error. An object written at or after cutoff — also by a Put that
	// runs while DeleteIfOlder does — is kept.
	DeleteIfOlder(ctx context.Context, key string, cutoff time.Time) (bool, error)
}

// TempCleaner is the optional capability of a Store whose Put can leave
// a partial temporary object behind when the process dies mid-write (a
// temporary file in a local folder; the parts of an unfinished multipart
// upload, which S3 keeps until it is aborted). The blob sweeper
// (package blobgc) calls it with the same grace period as for objects.
type TempCleaner interface {
	// CleanTemps removes the temporary objects last written more than
	// olderThan ago and reports how many it removed.
	CleanTemps(ctx context.Context, olderThan time.Duration) (int, error)
}

// KeyFor returns the content-addressed key of an object whose SHA-256 is
// sha256hex and whose file extension is ext ("png", "jpeg", "webp"):
// "ab/abcdef….png". The leading folder spreads objects over 256 folders, so
// that a million images make folders of about 4,000 files. (An earlier
// layout used two levels, "ab/cd/…": creating one of its 65,536 folders
// for nearly every new image made folder creation the largest cost of
// storing a file. Keys are stored with each image, so files written under
// the old layout stay where they are.)
// It returns "" (which every Store refuses) when sha256hex is not 64 hex
// digits or ext is not 1–10 lowercase letters or digits.
func KeyFor(sha256hex, ext string) string {
	sum := strings.ToLower(sha256hex)
	if len(sum) != 64 || strings.Trim(sum, "0123456789abcdef") != "" {
		return ""
	}
	ext = strings.TrimPrefix(ext, ".")
	if len(ext) == 0 || len(ext) > 10 || strings.Trim(ext, "0123456789abcdefghijklmnopqrstuvwxyz") != "" {
		return ""
	}
	return sum[0:2] + "/" + sum + "." + ext
}

// MaxKeyLen bounds a key's length in bytes.
const MaxKeyLen = 512

// ValidateKey returns nil for a key any Store accepts and an error wrapping
// ErrInvalidKey otherwise. It refuses absolute paths, backslashes, empty,
// "." and ".." segments and dot-files, so no key can leave a backend's root
// or collide with its temporary files.
func ValidateKey(key string) error {
	if key == "" {
		return fmt.Errorf("%w: empty", ErrInvalidKey)
	}
	if len(key) > MaxKeyLen {
		return fmt.Errorf("%w: longer than %d bytes", ErrInvalidKey, MaxKeyLen)
	}
	for _, seg := range strings.Split(key, "/") {
		if seg == "" {
			return fmt.Errorf("%w: %q has an empty segment or is absolute", ErrInvalidKey, key)
		}
		if seg[0] == '.' {
			return fmt.Errorf("%w: %q has a segment starting with a dot", ErrInvalidKey, key)
		}
		for i := 0; i < len(seg); i++ {
			c := seg[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
				return fmt.Errorf("%w: %q has the character %q", ErrInvalidKey, key, c)
			}
		}
	}
	return nil
}
