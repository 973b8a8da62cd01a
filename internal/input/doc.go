// Package input streams prompt rows out of TXT, CSV, JSONL and bulkgen
// manifest files. It is the "parse" stage of the pipeline: it turns bytes
// into rows of field values with their file and line, and reports bad
// records one by one so that a 100,000-row file with three broken lines
// yields three messages, not one. It does not check values (sizes, counts,
// seeds): the catalogue does that, the same way for every format.
//
// Usage:
//
//	r, err := input.Open("prompts.csv", f, input.Options{})
//	if err != nil { return err }            // fatal: empty, binary, bad header
//	for {
//		row, err := r.Next()
//		if err == io.EOF { break }
//		var re *input.RowError
//		if errors.As(err, &re) { report(re); continue } // one bad record
//		if err != nil { return err }        // fatal: read error, runaway quote
//		use(row)
//	}
//
// # Encoding
//
// Input is UTF-8, with or without a BOM, or UTF-16 (either byte order) with a
// BOM, as Excel writes "Unicode text"; UTF-16 without a BOM is recognised
// from the zero bytes of mostly-ASCII text. LF, CRLF and lone CR all end a
// line. Invalid UTF-8 is reported as a row error, never replaced: a prompt
// mangled to U+FFFD would still be sent and paid for. A NUL byte is a row
// error; one in the first 8 KiB, or a ZIP signature (.xlsx), makes Open fail
// with ErrNotText. Input with no content fails with ErrEmpty.
//
// # TXT
//
// One prompt a line. Blank lines and lines whose first non-blank character
// is '#' are skipped. After the prompt a line may carry options:
//
//	a lighthouse at dusk --negative "blurry, text" --seed 42 --aspect 3:2 --n 2
//	"a sign that says --stop--" --size 1024x1024
//	-- a sign that says --stop-- (the rest of the line, verbatim)
//
// The options are --negative, --seed, --aspect, --size, --n, --model,
// --quality, --format, --style, --name and --opt key=value (a provider
// option, stored as "opt.key"); --name=value works too, and every column
// alias of the CSV format is accepted as an option name (--negative_prompt,
// --ar, --count). A value is one word or a quoted string. In '...' everything
// is literal; in "..." the escapes \" and \\ are recognised and any other
// backslash is kept (C:\new stays C:\new).
//
// The prompt is everything before the first word that starts with "--". A
// prompt that must contain such a word is either quoted (the line starts
// with a quote and the closing quote ends the line or is followed by
// options) or written after a leading "-- ", which takes the rest of the
// line as the prompt with no options. A line starting with a quote whose
// closing quote is followed by other text ("Hello" on a wall) is an ordinary
// unquoted prompt, quotes included. Anything that does not parse — an
// unknown option, a missing value, an option given twice, text after the
// options, an unclosed quote, an option typed with a long dash (—seed) — is
// an error for that line; it never becomes part of a prompt.
//
// # CSV
//
// The first non-empty record is the header. The delimiter is Options.Delimiter
// or the most frequent of ',', tab, ';' and '|' outside quotes in the header
// line (a .tsv file defaults to tab). Quoting follows RFC 4180 ("" inside a
// quoted cell is a quote; quoted cells may hold delimiters and line breaks),
// with these relaxations: blanks around cells are trimmed, a quote inside an
// unquoted cell is literal (12" vinyl), and rows whose cells are all empty
// are skipped. Text after a closing quote is a row error.
//
// Header names are trimmed and matched with CanonicalField, so "Prompt",
// "Negative Prompt" or "AR" land on canonical fields; "opt.<x>" columns are
// provider options; every other named column is a template variable under
// its name as written. Two columns that map to the same name are a header
// error. Columns with an empty header are ignored, but a value in one is a
// row error. A row with fewer cells than the header has empty values for
// the rest; more cells is a row error unless the extra cells are empty
// (trailing delimiters). A CSV needs no prompt column: HasPrompt reports
// false and the caller must supply a template.
//
// # JSONL
//
// One JSON object a line, blank lines skipped, with the same keys as CSV
// headers. Strings are taken as they are, numbers as written, booleans as
// "true"/"false", null as absent. Arrays and objects are a row error, except
// an "opt" object whose keys become "opt.<key>".
//
// # Manifests
//
// A manifest.csv or manifest.jsonl written by an earlier run is recognised by
// its source_file, source_line, image_file and sha256 columns (keys) and is
// read back as one row per image: prompt, negative_prompt, model,
// aspect_ratio, quality, style, format and seed as recorded, size from width
// and height, n = 1, name = image_file without its extension, and the
// entries of the vars JSON object as variables and opt.* values. Such rows
// are Literal: their prompt is final and must not be templated again. Row
// File and Line point at the manifest itself.
//
// # Limits
//
// Nothing is read whole. A line or record longer than MaxRecordBytes
// (default 1 MiB) is a row error and reading resumes at the next line or
// record. In CSV that needs the quoting to be trusted: a single quoted cell
// longer than the limit (usually a missing closing quote) is fatal
// (ErrRecordTooLong). A header with more than MaxColumns (default 1,000)
// columns is fatal; data rows are never stored beyond the header's column
// count, so a row with a million cells costs no per-cell memory. A JSON
// object with more than MaxColumns keys is a row error.
package input
