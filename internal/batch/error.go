package batch

import (
	"errors"
	"fmt"
)

// Kind classifies an Error for the surfaces that show it: the REST API
// turns it into a status code, the CLI into an exit status.
type Kind int

// The kinds of Error.
const (
	// Invalid: the request or its input is wrong (a field, the file, no
	// row that can make an image).
	Invalid Kind = iota + 1
	// NotFound: a resource the request names is not the caller's.
	NotFound
	// Conflict: the batch's state does not allow the action.
	Conflict
	// Payment: the workspace's credits, quota or the batch's cost cap do
	// not cover it.
	Payment
	// Unavailable: the service cannot do it now (no queue configured).
	Unavailable
)

// Error is a refusal the caller can act on: a Kind, a stable Code
// ("invalid_field", "insufficient_credits", …), a message for a person, the
// request Field it is about (a JSON field name such as "defaults.n"), and
// Details to render as they are (JSON).
type Error struct {
	Kind    Kind
	Code    string
	Message string
	Field   string
	Details any
}

func (e *Error) Error() string { return e.Message }

// fieldError is an Invalid error about one field of the request.
func fieldError(field, format string, args ...any) *Error {
	return &Error{Kind: Invalid, Code: "invalid_field", Field: field,
		Message: field + ": " + fmt.Sprintf(format, args...)}
}

// stateError is the Conflict of an action the batch's status does not
// allow.
func stateError(status, action string) *Error {
	return &Error{Kind: Conflict, Code: "invalid_state", Message: fmt.Sprintf("cannot %s a batch that is %s", action, status),
		Details: map[string]string{"status": status}}
}

// AsError returns err's *Error, if it has one.
func AsError(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}
