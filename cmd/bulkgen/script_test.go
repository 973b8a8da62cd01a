package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	_ "image/jpeg" // the scripts' images are PNG and JPEG
	_ "image/png"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"bulkgen/internal/imagemeta"
	"bulkgen/internal/manifest"
)

// TestScripts runs the end-to-end scripts in testdata/script: each is a
// testscript (a txtar archive of commands and the files they use) over the
// binary TestMain built, in a fresh folder holding the repository's
// examples/ files, with a clean environment (no provider keys). Besides
// testscript's own commands (exists, cmp, stdout, stderr, …) they have:
//
//	bulkgen ARGS...           run the binary; ! bulkgen expects it to fail
//	status N                  the last bulkgen exited with status N
//	manifest DIR              check DIR's manifests against its files and print
//	                          one line per image (see cmdManifest)
//	replace FILE OLD NEW      replace the first OLD in FILE with NEW
//
// The README's own commands are tested apart, by TestREADME.
func TestScripts(t *testing.T) {
	t.Parallel()
	testscript.Run(t, testscript.Params{
		Dir:                 filepath.Join("testdata", "script"),
		RequireUniqueNames:  true,
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
			env.Values[scriptStateKey{}] = &scriptState{}
			examples, err := filepath.Glob(filepath.Join("..", "..", "examples", "*"))
			if err != nil {
				return err
			}
			for _, src := range examples {
				b, err := os.ReadFile(src)
				if err != nil {
					return err
				}
				if err := os.WriteFile(filepath.Join(env.WorkDir, filepath.Base(src)), b, 0o644); err != nil {
					return err
				}
			}
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"bulkgen":  cmdBulkgen,
			"status":   cmdStatus,
			"manifest": cmdManifest,
			"replace":  cmdReplace,
		},
	})
}

type scriptStateKey struct{}

// scriptState is what one script's commands share.
type scriptState struct {
	status int // of the last bulkgen
}

func state(ts *testscript.TestScript) *scriptState {
	return ts.Value(scriptStateKey{}).(*scriptState)
}

// cmdBulkgen runs the binary with args; its output is what stdout and
// stderr then check. It must exit 0, or, negated, with any other status
// (status N says which).
func cmdBulkgen(ts *testscript.TestScript, neg bool, args []string) {
	err := ts.Exec(binary, args...)
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		ts.Fatalf("run bulkgen: %v", err)
	}
	state(ts).status = code
	if neg && code == 0 {
		ts.Fatalf("bulkgen exited 0, want a failure")
	}
	if !neg && code != 0 {
		ts.Fatalf("bulkgen exited %d, want 0", code)
	}
}

// cmdStatus checks the last bulkgen's exit status.
func cmdStatus(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 || neg {
		ts.Fatalf("usage: status N")
	}
	want, err := strconv.Atoi(args[0])
	ts.Check(err)
	if got := state(ts).status; got != want {
		ts.Fatalf("bulkgen exited %d, want %d", got, want)
	}
}

// cmdReplace replaces the first occurrence of OLD in FILE by NEW, failing
// when there is none.
func cmdReplace(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 3 || neg {
		ts.Fatalf("usage: replace FILE OLD NEW")
	}
	path := ts.MkAbs(args[0])
	b, err := os.ReadFile(path)
	ts.Check(err)
	if !bytes.Contains(b, []byte(args[1])) {
		ts.Fatalf("%s does not contain %q", args[0], args[1])
	}
	ts.Check(os.WriteFile(path, bytes.Replace(b, []byte(args[1]), []byte(args[2]), 1), 0o644))
}

// cmdManifest checks an output folder the way a user relies on it, and
// prints one line per manifest.jsonl record, in order, for stdout to match:
//
//	FILE STATUS WxH seed=S line=L n=I attempts=A format=F model=M preview=P vars=K=V,… prompt="…"
//
// model and preview are the image's embedded record's. It fails unless:
// manifest.csv has the documented header and the same images in the same
// order; no two images share a name (ignoring case) and no two images of
// one row share a seed; and every succeeded image's file has the recorded
// size and sha256, decodes at the recorded width and height, and embeds
// the record's prompt, seed and line.
func cmdManifest(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 || neg {
		ts.Fatalf("usage: manifest DIR")
	}
	dir := ts.MkAbs(args[0])
	var recs []manifest.Record
	for i, line := range strings.Split(strings.TrimSpace(ts.ReadFile(filepath.Join(args[0], "manifest.jsonl"))), "\n") {
		var r manifest.Record
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			ts.Fatalf("manifest.jsonl line %d: %v", i+1, err)
		}
		recs = append(recs, r)
	}

	rows, err := csv.NewReader(strings.NewReader(ts.ReadFile(filepath.Join(args[0], "manifest.csv")))).ReadAll()
	ts.Check(err)
	if len(rows) == 0 || !slices.Equal(rows[0], manifest.Columns) {
		ts.Fatalf("manifest.csv header %q, want %q", rows[0], manifest.Columns)
	}
	if len(rows)-1 != len(recs) {
		ts.Fatalf("manifest.csv has %d images, manifest.jsonl %d", len(rows)-1, len(recs))
	}
	fileCol := slices.Index(manifest.Columns, "image_file")

	names := map[string]bool{}
	seeds := map[string]int64{} // "file:line:seed" → seen
	for i, r := range recs {
		if rows[i+1][fileCol] != r.ImageFile {
			ts.Fatalf("manifest.csv row %d is %q, manifest.jsonl %q", i+1, rows[i+1][fileCol], r.ImageFile)
		}
		if r.ImageFile != "" {
			if names[strings.ToLower(r.ImageFile)] {
				ts.Fatalf("two images are named %s", r.ImageFile)
			}
			names[strings.ToLower(r.ImageFile)] = true
		}
		key := fmt.Sprintf("%s:%d:%d", r.SourceFile, r.SourceLine, r.Seed)
		if _, dup := seeds[key]; dup {
			ts.Fatalf("two images of %s:%d share seed %d", r.SourceFile, r.SourceLine, r.Seed)
		}
		seeds[key] = r.Seed

		model, preview := r.Model, r.Preview
		if r.Status == manifest.StatusSucceeded {
			model, preview = checkImage(ts, dir, r)
		}
		var vars []string
		for _, k := range slices.Sorted(maps.Keys(r.Vars)) {
			vars = append(vars, k+"="+r.Vars[k])
		}
		fmt.Fprintf(ts.Stdout(), "%s %s %dx%d seed=%d line=%d n=%d attempts=%d format=%s model=%s preview=%t vars=%s prompt=%q\n",
			r.ImageFile, r.Status, r.Width, r.Height, r.Seed, r.SourceLine, r.Index, r.Attempts, r.Format, model, preview,
			strings.Join(vars, ","), r.Prompt)
	}
}

// checkImage checks a succeeded image's file against its record and returns
// the model and preview flag its embedded record names.
func checkImage(ts *testscript.TestScript, dir string, r manifest.Record) (string, bool) {
	data, err := os.ReadFile(filepath.Join(dir, r.ImageFile))
	if err != nil {
		ts.Fatalf("image %s: %v", r.ImageFile, err)
	}
	sum := sha256.Sum256(data)
	if int64(len(data)) != r.Bytes || hex.EncodeToString(sum[:]) != r.SHA256 {
		ts.Fatalf("%s: %d bytes, sha256 %x; the manifest says %d bytes, %s", r.ImageFile, len(data), sum, r.Bytes, r.SHA256)
	}
	cfg, _, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		ts.Fatalf("%s does not decode: %v", r.ImageFile, err)
	}
	if cfg.Width != r.Width || cfg.Height != r.Height {
		ts.Fatalf("%s: %dx%d, the manifest says %dx%d", r.ImageFile, cfg.Width, cfg.Height, r.Width, r.Height)
	}
	params, recJSON, err := imagemeta.Read(data)
	if err != nil {
		ts.Fatalf("%s: read metadata: %v", r.ImageFile, err)
	}
	var emb manifest.Record
	if err := json.Unmarshal(recJSON, &emb); err != nil {
		ts.Fatalf("%s: embedded record: %v", r.ImageFile, err)
	}
	if params.Prompt != r.Prompt || params.Seed != r.Seed || emb.SourceLine != r.SourceLine {
		ts.Fatalf("%s: embedded prompt %q seed %d line %d; the manifest says %q %d %d",
			r.ImageFile, params.Prompt, params.Seed, emb.SourceLine, r.Prompt, r.Seed, r.SourceLine)
	}
	return emb.Model, emb.Preview
}
