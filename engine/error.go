package engine

import (
	"errors"
	"fmt"
)

// Error codes, stable on the wire; the http package maps each to a status.
const (
	EINVALID       = "invalid"
	EUNAUTHORIZED  = "unauthorized"
	EFORBIDDEN     = "forbidden"
	ENOTFOUND      = "not_found"
	ECONFLICT      = "conflict"
	EINSUFFICIENT  = "insufficient_points"
	EUNPROCESSABLE = "unprocessable"
	EINTERNAL      = "internal"
	// EUNAVAILABLE is work stopped before it was done (the server shutting
	// down, a deadline): the same request may succeed later.
	EUNAVAILABLE = "unavailable"
	// ERATELIMITED is a caller that made too many requests of a kind
	// (lookups of coupon codes that do not exist): it may try again later.
	ERATELIMITED = "rate_limited"
)

// Error is an error a client can act on. Anything that is not an *Error is
// internal and its details stay in the server log.
type Error struct {
	Code    string
	Message string
	Field   string
	// Details carries positioned problems, such as the errors of a rules
	// file that does not compile.
	Details []Detail
	// Info holds facts a client acts on by their name, such as the reason
	// a coupon is refused ({"reason": "used"}); shown as details when
	// Details is empty.
	Info map[string]string
	// cause is the error behind this one, for the log and errors.As; the
	// client sees only Message.
	cause error
}

// Detail is one positioned problem inside a request body, or in the rules
// file when Rule names the earn rule at fault.
type Detail struct {
	Rule    string `json:"rule,omitempty"`
	Line    int    `json:"line"`
	Column  int    `json:"column"`
	Message string `json:"message"`
}

// Unwrap returns the error behind e, if any.
func (e *Error) Unwrap() error { return e.cause }

// Error is the code and the message; a field error's message already
// starts with its field (FieldErrorf), so the field is not repeated.
func (e *Error) Error() string {
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

// Errorf returns an *Error with a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// FieldErrorf returns an *Error about one field of the request; the message
// is prefixed with the field so it reads well on its own.
func FieldErrorf(code, field, format string, args ...any) *Error {
	return &Error{Code: code, Field: field, Message: field + ": " + fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of an *Error anywhere in err's chain, EINTERNAL
// for any other error and "" for nil.
func ErrorCode(err error) string {
	var e *Error
	switch {
	case err == nil:
		return ""
	case errors.As(err, &e):
		return e.Code
	default:
		return EINTERNAL
	}
}

// ReasonErrorf returns an *Error whose Info gives the reason word.
func ReasonErrorf(code, reason, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...), Info: map[string]string{"reason": reason}}
}
