// Package jwkjson reads the members of a JWK, decoded as a JSON object with
// the JSON v2 semantics (duplicate names refused, names matched exactly).
// Its errors are bare reasons, without prefix, that name members and never
// carry key material.
package jwkjson

import (
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"strings"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/credseal/e2ee/internal/redact"
)

// Object is a JSON object, its members not yet decoded.
type Object = map[string]jsontext.Value

// RequiredString decodes the string member name, which must be present.
func RequiredString(obj Object, name string) (string, error) {
	s, ok, err := OptionalString(obj, name)
	if err == nil && !ok {
		err = fmt.Errorf("%s is missing", name)
	}
	return s, err
}

// OptionalString decodes the string member name, reporting whether it is
// present.
func OptionalString(obj Object, name string) (string, bool, error) {
	raw, ok := obj[name]
	if !ok {
		return "", false, nil
	}
	var s string
	if err := jsonv2.Unmarshal(raw, &s); err != nil {
		return "", true, fmt.Errorf("%s is not a string", name)
	}
	return s, true, nil
}

// BigInt decodes the base64url-encoded unsigned big-endian integer name.
func BigInt(obj Object, name string) (*big.Int, error) {
	s, err := RequiredString(obj, name)
	if err != nil {
		return nil, err
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
	if err != nil {
		return nil, fmt.Errorf("%s is not base64url", name)
	}
	if len(b) == 0 {
		return nil, fmt.Errorf("%s is empty", name)
	}
	return new(big.Int).SetBytes(b), nil
}

// KidSuffix returns ` (kid "…")` for a JWK that names a string kid, else "".
func KidSuffix(obj Object) string {
	kid, ok, err := OptionalString(obj, "kid")
	if !ok || err != nil {
		return ""
	}
	return " (kid " + redact.Quote(kid) + ")"
}

// DuplicateName describes a duplicate member name that err, a decoding
// error, reports, or returns "" when err reports something else.
func DuplicateName(err error) string {
	var se *jsontext.SyntacticError
	if !errors.As(err, &se) || !errors.Is(err, jsontext.ErrDuplicateName) {
		return ""
	}
	where := "the key"
	if parent := se.JSONPointer.Parent(); parent != "" {
		where = redact.Quote(string(parent))
	}
	return fmt.Sprintf("duplicate member name %s in %s", redact.Quote(se.JSONPointer.LastToken()), where)
}
