package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Workspace is a row of workspaces: the owner of batches, images and
// credits. Every user gets a personal one.
type Workspace struct {
	ID          int64
	OwnerUserID int64
	Name        string
	CreatedAt   time.Time
}

const workspaceColumns = `id, owner_user_id, name, created_at`

func scanWorkspace(row interface{ Scan(...any) error }) (Workspace, error) {
	var w Workspace
	err := row.Scan(&w.ID, &w.OwnerUserID, &w.Name, timeCol{&w.CreatedAt})
	return w, err
}

// CreateWorkspace inserts w (ID and CreatedAt are set by the store) with
// its credit account, limited and empty (see CreditAccount), and returns
// the stored row.
func (db *DB) CreateWorkspace(ctx context.Context, q Querier, w Workspace) (Workspace, error) {
	now := db.timeArg(db.timestamp())
	out, err := scanWorkspace(q.QueryRowContext(ctx, db.q(`INSERT INTO workspaces (owner_user_id, name, created_at)
		VALUES (?, ?, ?) RETURNING `+workspaceColumns), w.OwnerUserID, w.Name, now))
	if err != nil {
		return Workspace{}, fmt.Errorf("create workspace: %w", err)
	}
	if _, err := q.ExecContext(ctx, db.q(`INSERT INTO credit_accounts (workspace_id, updated_at) VALUES (?, ?)`),
		out.ID, now); err != nil {
		return Workspace{}, fmt.Errorf("create credit account: %w", err)
	}
	return out, nil
}

// GetWorkspace returns the workspace with the given id, or ErrNotFound.
func (db *DB) GetWorkspace(ctx context.Context, q Querier, id int64) (Workspace, error) {
	w, err := scanWorkspace(q.QueryRowContext(ctx, db.q(`SELECT `+workspaceColumns+` FROM workspaces WHERE id = ?`), id))
	if errors.Is(err, sql.ErrNoRows) {
		return Workspace{}, fmt.Errorf("get workspace %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return Workspace{}, fmt.Errorf("get workspace %d: %w", id, err)
	}
	return w, nil
}

// ListWorkspacesByOwner returns the workspaces a user owns, oldest first
// (so the personal workspace comes first).
func (db *DB) ListWorkspacesByOwner(ctx context.Context, q Querier, userID int64) ([]Workspace, error) {
	rows, err := q.QueryContext(ctx, db.q(`SELECT `+workspaceColumns+` FROM workspaces WHERE owner_user_id = ? ORDER BY id`), userID)
	if err != nil {
		return nil, fmt.Errorf("list workspaces: %w", err)
	}
	return collect(rows, scanWorkspace, "list workspaces")
}

// Project is a row of projects: a named folder of batches in a workspace.
type Project struct {
	ID          int64
	WorkspaceID int64
	Name        string
	CreatedAt   time.Time
}

const projectColumns = `id, workspace_id, name, created_at`

func scanProject(row interface{ Scan(...any) error }) (Project, error) {
	var p Project
	err := row.Scan(&p.ID, &p.WorkspaceID, &p.Name, timeCol{&p.CreatedAt})
	return p, err
}

// CreateProject inserts p (ID and CreatedAt are set by the store). A name
// already used in the workspace returns ErrConflict.
func (db *DB) CreateProject(ctx context.Context, q Querier, p Project) (Project, error) {
	out, err := scanProject(q.QueryRowContext(ctx, db.q(`INSERT INTO projects (workspace_id, name, created_at)
		VALUES (?, ?, ?) RETURNING `+projectColumns), p.WorkspaceID, p.Name, db.timeArg(db.timestamp())))
	if isUniqueViolation(err) {
		return Project{}, fmt.Errorf("create project %q: %w", p.Name, ErrConflict)
	}
	if err != nil {
		return Project{}, fmt.Errorf("create project: %w", err)
	}
	return out, nil
}

// GetProject returns the workspace's project id, or ErrNotFound (also when
// the project belongs to another workspace).
func (db *DB) GetProject(ctx context.Context, q Querier, workspaceID, id int64) (Project, error) {
	p, err := scanProject(q.QueryRowContext(ctx, db.q(`SELECT `+projectColumns+` FROM projects
		WHERE id = ? AND workspace_id = ?`), id, workspaceID))
	if errors.Is(err, sql.ErrNoRows) {
		return Project{}, fmt.Errorf("get project %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return Project{}, fmt.Errorf("get project %d: %w", id, err)
	}
	return p, nil
}

// ListProjects returns a page of the workspace's projects in id order,
// starting after the id `after` (0 for the first page).
func (db *DB) ListProjects(ctx context.Context, q Querier, workspaceID, after int64, limit int) ([]Project, error) {
	rows, err := q.QueryContext(ctx, db.q(`SELECT `+projectColumns+` FROM projects
		WHERE workspace_id = ? AND id > ? ORDER BY id LIMIT ?`), workspaceID, after, clampLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("list projects: %w", err)
	}
	return collect(rows, scanProject, "list projects")
}
