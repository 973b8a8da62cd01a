// Package expand owns bulkgen's prompt template language and the rules that
// turn one input row into prompts, seeds and file names.
//
// A prompt template mixes literal text with:
//
//   - {column}: the value of a row's column (case-insensitive, trimmed name);
//   - {a|b|c}: a variant, one alternative chosen by the row's seed, or every
//     alternative in combinatorial mode; variants nest and may hold
//     variables ({red {color}|blue});
//   - __name__: a line of name.txt in the wildcards directory;
//   - \{ \} \| \\ \_: escapes for the characters above.
//
// Values substituted from the row are never parsed again, so a CSV cell that
// happens to contain braces cannot inject a variant.
//
// Parse a template once (the result is immutable and safe to share), then
// call [Expander.Count] to validate and size a row and [Expander.Expand] to
// produce its prompts. File names use a sibling language, [ParseName], whose
// output is always a safe relative path; [Unique] keeps names
// distinct within a batch.
//
// User-facing documentation lives in docs/templates.md.
package expand
