// Package auth owns identities: API tokens (and, later, passwords and
// sessions), and the caller's identity carried in a request context.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"strings"

	"bulkgen/internal/store"
)

// TokenPrefix starts every bulkgen API token, so that secret scanners and
// people can recognise one.
const TokenPrefix = "bgk_"

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// NewToken returns a fresh API token: the plaintext (shown once), its
// SHA-256 (stored) and a short display prefix.
func NewToken() (plain string, hash []byte, display string) {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand never fails on supported platforms
	plain = TokenPrefix + strings.ToLower(b32.EncodeToString(b[:]))
	return plain, HashToken(plain), plain[:len(TokenPrefix)+6]
}

// HashToken is what the store keeps of a token. Tokens carry 256 random
// bits, so a plain SHA-256 (no salt, no stretching) is enough and lets the
// lookup be an index search.
func HashToken(plain string) []byte {
	s := sha256.Sum256([]byte(plain))
	return s[:]
}

// Identity is who is making a request.
type Identity struct {
	UserID      int64
	WorkspaceID int64
	Role        store.Role
	TokenID     int64
}

type ctxKey struct{}

// WithIdentity returns ctx carrying id.
func WithIdentity(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, ctxKey{}, id)
}

// FromContext returns the identity in ctx, if any.
func FromContext(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(ctxKey{}).(Identity)
	return id, ok
}
