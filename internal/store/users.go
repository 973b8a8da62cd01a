package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Role is a user's global role.
type Role string

// The roles, from least to most privileged.
const (
	RoleUser    Role = "user"
	RoleSupport Role = "support"
	RoleAdmin   Role = "admin"
)

// User is a row of users. Email is stored trimmed and lower-cased.
type User struct {
	ID           int64
	Email        string
	Name         string
	PasswordHash string // argon2id encoded hash; empty when the user cannot log in with a password
	Role         Role
	CreatedAt    time.Time
}

const userColumns = `id, email, name, password_hash, role, created_at`

func scanUser(row interface{ Scan(...any) error }) (User, error) {
	var u User
	err := row.Scan(&u.ID, &u.Email, &u.Name, &u.PasswordHash, &u.Role, timeCol{&u.CreatedAt})
	return u, err
}

// normalizeEmail is the one spelling of an address the users table keeps.
func normalizeEmail(email string) string { return strings.ToLower(strings.TrimSpace(email)) }

// CreateUser inserts u (ID and CreatedAt are set by the store; an empty Role
// means RoleUser) and returns the stored row. A taken email returns an error
// wrapping ErrConflict.
func (db *DB) CreateUser(ctx context.Context, q Querier, u User) (User, error) {
	if u.Role == "" {
		u.Role = RoleUser
	}
	row := q.QueryRowContext(ctx, db.q(`INSERT INTO users (email, name, password_hash, role, created_at)
		VALUES (?, ?, ?, ?, ?) RETURNING `+userColumns),
		normalizeEmail(u.Email), u.Name, u.PasswordHash, string(u.Role), db.timeArg(db.timestamp()))
	out, err := scanUser(row)
	if isUniqueViolation(err) {
		return User{}, fmt.Errorf("create user %q: %w", u.Email, ErrConflict)
	}
	if err != nil {
		return User{}, fmt.Errorf("create user: %w", err)
	}
	return out, nil
}

// GetUser returns the user with the given id, or ErrNotFound.
func (db *DB) GetUser(ctx context.Context, q Querier, id int64) (User, error) {
	u, err := scanUser(q.QueryRowContext(ctx, db.q(`SELECT `+userColumns+` FROM users WHERE id = ?`), id))
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, fmt.Errorf("get user %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return User{}, fmt.Errorf("get user %d: %w", id, err)
	}
	return u, nil
}

// GetUserByEmail returns the user with the given email (compared after
// trimming and lower-casing), or ErrNotFound.
func (db *DB) GetUserByEmail(ctx context.Context, q Querier, email string) (User, error) {
	u, err := scanUser(q.QueryRowContext(ctx, db.q(`SELECT `+userColumns+` FROM users WHERE email = ?`), normalizeEmail(email)))
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, fmt.Errorf("get user by email: %w", ErrNotFound)
	}
	if err != nil {
		return User{}, fmt.Errorf("get user by email: %w", err)
	}
	return u, nil
}

// CountUsers returns the number of users; serve uses it to create the first
// admin on a fresh database.
func (db *DB) CountUsers(ctx context.Context, q Querier) (int64, error) {
	var n int64
	if err := q.QueryRowContext(ctx, `SELECT COUNT(*) FROM users`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count users: %w", err)
	}
	return n, nil
}

// SetUserPassword replaces a user's password hash, or returns ErrNotFound.
func (db *DB) SetUserPassword(ctx context.Context, q Querier, userID int64, passwordHash string) error {
	res, err := q.ExecContext(ctx, db.q(`UPDATE users SET password_hash = ? WHERE id = ?`), passwordHash, userID)
	return checkUpdated(res, err, "set password of user", userID)
}

// SetUserRole changes a user's role, or returns ErrNotFound.
func (db *DB) SetUserRole(ctx context.Context, q Querier, userID int64, role Role) error {
	res, err := q.ExecContext(ctx, db.q(`UPDATE users SET role = ? WHERE id = ?`), string(role), userID)
	return checkUpdated(res, err, "set role of user", userID)
}

// checkUpdated turns an UPDATE or DELETE that touched no row into
// ErrNotFound.
func checkUpdated(res sql.Result, err error, what string, id int64) error {
	if err != nil {
		return fmt.Errorf("%s %d: %w", what, id, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("%s %d: %w", what, id, err)
	}
	if n == 0 {
		return fmt.Errorf("%s %d: %w", what, id, ErrNotFound)
	}
	return nil
}

// Session is a row of sessions: one browser login. Only the SHA-256 of the
// cookie value is stored.
type Session struct {
	ID         int64
	UserID     int64
	TokenHash  []byte
	UserAgent  string
	IP         string
	CreatedAt  time.Time
	LastSeenAt time.Time
	ExpiresAt  time.Time
}

const sessionColumns = `id, user_id, token_hash, user_agent, ip, created_at, last_seen_at, expires_at`

func scanSession(row interface{ Scan(...any) error }) (Session, error) {
	var s Session
	err := row.Scan(&s.ID, &s.UserID, &s.TokenHash, &s.UserAgent, &s.IP,
		timeCol{&s.CreatedAt}, timeCol{&s.LastSeenAt}, timeCol{&s.ExpiresAt})
	return s, err
}

// CreateSession inserts s (ID, CreatedAt and LastSeenAt are set by the
// store) and returns the stored row.
func (db *DB) CreateSession(ctx context.Context, q Querier, s Session) (Session, error) {
	now := db.timestamp()
	out, err := scanSession(q.QueryRowContext(ctx, db.q(`INSERT INTO sessions
		(user_id, token_hash, user_agent, ip, created_at, last_seen_at, expires_at)
		VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING `+sessionColumns),
		s.UserID, s.TokenHash, s.UserAgent, s.IP, db.timeArg(now), db.timeArg(now), db.timeArg(s.ExpiresAt)))
	if err != nil {
		return Session{}, fmt.Errorf("create session: %w", err)
	}
	return out, nil
}

// LookupSession returns the unexpired session whose token hash is hash, or
// ErrNotFound.
func (db *DB) LookupSession(ctx context.Context, q Querier, hash []byte) (Session, error) {
	s, err := scanSession(q.QueryRowContext(ctx, db.q(`SELECT `+sessionColumns+` FROM sessions
		WHERE token_hash = ? AND expires_at > ?`), hash, db.timeArg(db.timestamp())))
	if errors.Is(err, sql.ErrNoRows) {
		return Session{}, fmt.Errorf("lookup session: %w", ErrNotFound)
	}
	if err != nil {
		return Session{}, fmt.Errorf("lookup session: %w", err)
	}
	return s, nil
}

// TouchSession records activity on a session and moves its expiry.
func (db *DB) TouchSession(ctx context.Context, q Querier, id int64, expiresAt time.Time) error {
	res, err := q.ExecContext(ctx, db.q(`UPDATE sessions SET last_seen_at = ?, expires_at = ? WHERE id = ?`),
		db.timeArg(db.timestamp()), db.timeArg(expiresAt), id)
	return checkUpdated(res, err, "touch session", id)
}

// DeleteSession removes one session (log out). Deleting a missing session
// is not an error.
func (db *DB) DeleteSession(ctx context.Context, q Querier, id int64) error {
	if _, err := q.ExecContext(ctx, db.q(`DELETE FROM sessions WHERE id = ?`), id); err != nil {
		return fmt.Errorf("delete session %d: %w", id, err)
	}
	return nil
}

// DeleteUserSessions removes every session of a user (password change, log
// out everywhere).
func (db *DB) DeleteUserSessions(ctx context.Context, q Querier, userID int64) error {
	if _, err := q.ExecContext(ctx, db.q(`DELETE FROM sessions WHERE user_id = ?`), userID); err != nil {
		return fmt.Errorf("delete sessions of user %d: %w", userID, err)
	}
	return nil
}

// APIToken is a row of api_tokens. Only the SHA-256 of the secret is
// stored; Prefix is its first few characters, kept for display.
type APIToken struct {
	ID          int64
	UserID      int64
	WorkspaceID int64
	Name        string
	TokenHash   []byte
	Prefix      string
	CreatedAt   time.Time
	LastUsedAt  time.Time // zero when never used
	RevokedAt   time.Time // zero while valid
}

const apiTokenColumns = `id, user_id, workspace_id, name, token_hash, prefix, created_at, last_used_at, revoked_at`

func scanAPIToken(row interface{ Scan(...any) error }) (APIToken, error) {
	var t APIToken
	err := row.Scan(&t.ID, &t.UserID, &t.WorkspaceID, &t.Name, &t.TokenHash, &t.Prefix,
		timeCol{&t.CreatedAt}, timeCol{&t.LastUsedAt}, timeCol{&t.RevokedAt})
	return t, err
}

// CreateAPIToken inserts t (ID and CreatedAt are set by the store) and
// returns the stored row. A hash already in use returns ErrConflict.
func (db *DB) CreateAPIToken(ctx context.Context, q Querier, t APIToken) (APIToken, error) {
	out, err := scanAPIToken(q.QueryRowContext(ctx, db.q(`INSERT INTO api_tokens
		(user_id, workspace_id, name, token_hash, prefix, created_at)
		VALUES (?, ?, ?, ?, ?, ?) RETURNING `+apiTokenColumns),
		t.UserID, t.WorkspaceID, t.Name, t.TokenHash, t.Prefix, db.timeArg(db.timestamp())))
	if isUniqueViolation(err) {
		return APIToken{}, fmt.Errorf("create api token: %w", ErrConflict)
	}
	if err != nil {
		return APIToken{}, fmt.Errorf("create api token: %w", err)
	}
	return out, nil
}

// LookupAPIToken returns the unrevoked token whose hash is hash, or
// ErrNotFound (also for a revoked token, so callers cannot forget to check).
func (db *DB) LookupAPIToken(ctx context.Context, q Querier, hash []byte) (APIToken, error) {
	t, err := scanAPIToken(q.QueryRowContext(ctx, db.q(`SELECT `+apiTokenColumns+` FROM api_tokens
		WHERE token_hash = ? AND revoked_at IS NULL`), hash))
	if errors.Is(err, sql.ErrNoRows) {
		return APIToken{}, fmt.Errorf("lookup api token: %w", ErrNotFound)
	}
	if err != nil {
		return APIToken{}, fmt.Errorf("lookup api token: %w", err)
	}
	return t, nil
}

// TouchAPIToken records that a token was just used.
func (db *DB) TouchAPIToken(ctx context.Context, q Querier, id int64) error {
	res, err := q.ExecContext(ctx, db.q(`UPDATE api_tokens SET last_used_at = ? WHERE id = ?`), db.timeArg(db.timestamp()), id)
	return checkUpdated(res, err, "touch api token", id)
}

// ListAPITokens returns a user's tokens, revoked ones included, oldest first.
func (db *DB) ListAPITokens(ctx context.Context, q Querier, userID int64) ([]APIToken, error) {
	rows, err := q.QueryContext(ctx, db.q(`SELECT `+apiTokenColumns+` FROM api_tokens WHERE user_id = ? ORDER BY id`), userID)
	if err != nil {
		return nil, fmt.Errorf("list api tokens: %w", err)
	}
	return collect(rows, scanAPIToken, "list api tokens")
}

// RevokeAPIToken revokes the user's token id. It returns ErrNotFound when
// the token does not belong to the user or is already revoked.
func (db *DB) RevokeAPIToken(ctx context.Context, q Querier, userID, id int64) error {
	res, err := q.ExecContext(ctx, db.q(`UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND user_id = ? AND revoked_at IS NULL`),
		db.timeArg(db.timestamp()), id, userID)
	return checkUpdated(res, err, "revoke api token", id)
}

// collect scans every row with scan, closing rows and checking rows.Err.
func collect[T any](rows *sql.Rows, scan func(interface{ Scan(...any) error }) (T, error), what string) (out []T, err error) {
	defer func() {
		if cerr := rows.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("%s: close: %w", what, cerr)
		}
	}()
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("%s: scan: %w", what, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}
