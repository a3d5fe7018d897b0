package engine

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Limits on client-supplied strings, so one request cannot bloat a record.
const (
	MaxIDLen        = 128
	MaxTextLen      = 256
	MaxItems        = 200
	MaxAttributes   = 50
	maxFutureSkew   = 5 * time.Minute
	dateLayout      = "2006-01-02"
	maxAttributeKey = 64
)

// checkClientID validates an id a client made: 1–128 printable characters.
func checkClientID(field, id string) error {
	if id == "" {
		return FieldErrorf(EINVALID, field, "is required")
	}
	if len(id) > MaxIDLen {
		return FieldErrorf(EINVALID, field, "must be at most %d characters", MaxIDLen)
	}
	if !utf8.ValidString(id) {
		return FieldErrorf(EINVALID, field, "must be valid UTF-8")
	}
	for _, r := range id {
		if !unicode.IsPrint(r) {
			return FieldErrorf(EINVALID, field, "must contain only printable characters")
		}
	}
	return nil
}

// checkRecordID validates the id of a purchase, refund, redemption or
// adjustment, which the API takes in paths (/v1/purchases/{id}): a slash
// would split the path, and clients and proxies remove the segments "."
// and "..", so an id holding either could be stored and never reached.
func checkRecordID(id string) error {
	if err := checkClientID("id", id); err != nil {
		return err
	}
	if strings.Contains(id, "/") || id == "." || id == ".." {
		return FieldErrorf(EINVALID, "id", "must not contain \"/\" nor be \".\" or \"..\", so that it can appear in a path")
	}
	return nil
}

// checkText validates an optional free-text field.
func checkText(field, s string, max int) error {
	if len(s) > max {
		return FieldErrorf(EINVALID, field, "must be at most %d characters", max)
	}
	if !utf8.ValidString(s) {
		return FieldErrorf(EINVALID, field, "must be valid UTF-8")
	}
	return nil
}

// parseTime parses an RFC 3339 time; empty means def.
func parseTime(field, s string, def time.Time) (time.Time, error) {
	if s == "" {
		return def, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, FieldErrorf(EINVALID, field, "must be an RFC 3339 time like 2026-11-23T14:05:00Z")
	}
	// Stores keep microseconds (Store: Time).
	return t.UTC().Truncate(time.Microsecond), nil
}

// hashRequest fingerprints a decoded request so that a retry with the same
// content matches whatever the JSON's spacing or key order.
func hashRequest(req any) string {
	b, err := json.Marshal(req)
	if err != nil {
		panic("engine: request not encodable: " + err.Error())
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// replay answers an idempotent write whose client id is already recorded:
// the stored answer when the request is the same, a conflict when the id
// was used for another request.
func replay[R any](kind, id, hash, storedHash string, stored R) (*R, error) {
	if storedHash != hash {
		return nil, FieldErrorf(ECONFLICT, "id", "%s %q was already posted with a different body", kind, id)
	}
	return &stored, nil
}
