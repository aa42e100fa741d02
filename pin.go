package e2ee

import (
	"encoding/base64"
	"fmt"
	"slices"
	"strings"

	"github.com/credseal/e2ee/internal/redact"
)

// thumbprintLen is the length of a base64url-encoded SHA-256 thumbprint.
const thumbprintLen = 43

// keyPin is what a key must match beyond the eligibility rules: the kid of
// [FetcherConfig.KeyID] and the thumbprints of [FetcherConfig.Thumbprints].
// Its zero value accepts every key.
type keyPin struct {
	kid         string   // "" accepts any kid
	thumbprints []string // empty accepts any key
}

// newKeyPin returns the pin for kid and thumbprints, refusing a thumbprint
// that is not 43 base64url characters encoding 32 bytes.
func newKeyPin(kid string, thumbprints []string) (keyPin, error) {
	for i, tp := range thumbprints {
		if err := checkThumbprint(tp); err != nil {
			return keyPin{}, fmt.Errorf("e2ee: FetcherConfig.Thumbprints[%d]: %w", i, err)
		}
	}
	return keyPin{kid: kid, thumbprints: slices.Clone(thumbprints)}, nil
}

// checkThumbprint reports why tp is not an RFC 7638 SHA-256 thumbprint as
// [Key.Thumbprint] gives it, or nil when it is one.
func checkThumbprint(tp string) error {
	if len(tp) != thumbprintLen || strings.ContainsAny(tp, "=+/") {
		return fmt.Errorf("%s is not a SHA-256 thumbprint: want %d base64url characters, as Key.Thumbprint gives",
			redact.Quote(tp), thumbprintLen)
	}
	if _, err := base64.RawURLEncoding.Strict().DecodeString(tp); err != nil {
		return fmt.Errorf("%s is not a SHA-256 thumbprint: not base64url", redact.Quote(tp))
	}
	return nil
}

// check returns why k does not match the pin, or nil when it does. Its
// errors are bare reasons, without prefix, like those of parseJWK.
func (p keyPin) check(k *Key) error {
	if p.kid != "" && k.ID != p.kid {
		return fmt.Errorf("kid %s is not the pinned kid %s", redact.Quote(k.ID), redact.Quote(p.kid))
	}
	if len(p.thumbprints) == 0 {
		return nil
	}
	tp, err := k.Thumbprint()
	if err != nil {
		return err
	}
	if !slices.Contains(p.thumbprints, tp) {
		return fmt.Errorf("key thumbprint %s is not pinned (FetcherConfig.Thumbprints)", tp)
	}
	return nil
}
