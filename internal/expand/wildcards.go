package expand

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
)

// MaxWildcardFile caps the size of one wildcard file. Wildcard lists are
// word lists; a file this large is a mistake, and reading it whole into
// memory for every batch would be a cheap way to exhaust a server.
const MaxWildcardFile = 8 << 20

// ErrBadWildcardName is returned for a wildcard name outside
// [A-Za-z0-9_/-] or with an empty path segment.
var ErrBadWildcardName = errors.New("bad wildcard name")

// Wildcards resolves __name__ to the lines of name.txt inside one directory.
// Files are read on first use and cached for the life of the value; it is
// safe for concurrent use.
type Wildcards struct {
	// root confines every open to the directory: os.Root refuses "..",
	// absolute paths and symlinks that lead outside it.
	root *os.Root

	mu    sync.RWMutex
	cache map[string]wildcardFile
}

type wildcardFile struct {
	lines []string
	err   error
}

// NewWildcards opens dir as a wildcards directory. Close releases it.
func NewWildcards(dir string) (*Wildcards, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("open wildcards directory: %w", err)
	}
	return &Wildcards{root: root, cache: make(map[string]wildcardFile)}, nil
}

// Close releases the directory handle. Lines already cached stay usable.
func (w *Wildcards) Close() error { return w.root.Close() }

// Lines returns the options of wildcard name: the lines of name.txt,
// trimmed, with blank lines and lines starting with '#' skipped. The result
// is shared and must not be modified. A missing file is an error wrapping
// fs.ErrNotExist; a file with no options, one over MaxWildcardFile and a
// name outside [A-Za-z0-9_/-] are errors too. Results, errors included, are
// cached, so each file is read at most once.
func (w *Wildcards) Lines(name string) ([]string, error) {
	w.mu.RLock()
	f, ok := w.cache[name]
	w.mu.RUnlock()
	if ok {
		return f.lines, f.err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if f, ok := w.cache[name]; ok {
		return f.lines, f.err
	}
	lines, err := w.load(name)
	if err != nil {
		err = fmt.Errorf("wildcard __%s__: %w", name, err)
	}
	w.cache[name] = wildcardFile{lines: lines, err: err}
	return lines, err
}

func (w *Wildcards) load(name string) ([]string, error) {
	if !validWildcardName(name) {
		return nil, ErrBadWildcardName
	}
	f, err := w.root.Open(name + ".txt")
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }() // read-only: nothing to lose on close
	if st, err := f.Stat(); err != nil {
		return nil, err
	} else if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s.txt is not a regular file", name)
	}
	// Stat could race with a writer; the limited read is the real cap.
	data, err := io.ReadAll(io.LimitReader(f, MaxWildcardFile+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxWildcardFile {
		return nil, fmt.Errorf("%s.txt is larger than %d bytes", name, MaxWildcardFile)
	}
	data = bytes.TrimPrefix(data, []byte("\ufeff"))
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, MaxWildcardFile+1)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		lines = append(lines, strings.ToValidUTF8(line, "\uFFFD"))
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(lines) == 0 {
		return nil, fmt.Errorf("%s.txt has no options (only blank or # lines)", name)
	}
	return lines, nil
}
