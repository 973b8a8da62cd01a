package main

import "strings"

// shellQuote returns args as one line that a POSIX shell (sh, bash, zsh)
// reads back as the same words, so that a command bulkgen prints can be
// pasted. Words made only of characters no shell treats specially stay as
// they are; every other word is put in single quotes, inside which nothing
// is special. A single quote inside is written as close, escaped quote,
// reopen, and the empty word as two quotes:
//
//	it's  ->  'it'\''s'
//	(empty) ->  ''
func shellQuote(args []string) string {
	var b strings.Builder
	for i, a := range args {
		if i > 0 {
			b.WriteByte(' ')
		}
		if a != "" && strings.IndexFunc(a, needsQuote) < 0 {
			b.WriteString(a)
			continue
		}
		b.WriteByte('\'')
		b.WriteString(strings.ReplaceAll(a, "'", `'\''`))
		b.WriteByte('\'')
	}
	return b.String()
}

// needsQuote reports whether r may mean something to a shell in a bare
// word. The safe set is small on purpose: letters, digits and a few
// punctuation marks; anything else (spaces, quotes, $ ` \ ! * ? [ ] { } ~ #
// ; & | < > ( ), control and non-ASCII characters) is quoted. "=" is safe
// because the words follow a command name ("bulkgen run …"), where the
// shell no longer reads NAME=value as an assignment.
func needsQuote(r rune) bool {
	switch {
	case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9':
		return false
	}
	return !strings.ContainsRune("-_./:,@%+=", r)
}
