// Package pemkey reads a public key as people paste it: PEM text with white
// space, quotes or literal \n escapes around it, bare base64 DER without
// BEGIN and END lines, and an SPKI key under an "RSA PUBLIC KEY" label or a
// PKCS#1 key under "PUBLIC KEY".
package pemkey

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	"github.com/credseal/e2ee/internal/redact"
)

// PrivateBlockError is the error of text that holds a private key block,
// wherever it stands: private key material has no place in a client's
// configuration.
type PrivateBlockError struct {
	Type string // the block's label, such as "RSA PRIVATE KEY"
}

// Error says which block it is, never what it holds.
func (e *PrivateBlockError) Error() string {
	return fmt.Sprintf("PEM holds a %s block; a client needs only the public key", redact.Quote(e.Type))
}

// Text returns data as PEM text that encoding/pem reads, and what it
// undid to get there: quotes around it, literal \n escapes, indentation.
func Text(data []byte) (string, []string) {
	var seen []string
	text := strings.TrimSpace(string(data))
	if len(text) >= 2 && (text[0] == '"' && text[len(text)-1] == '"' || text[0] == '\'' && text[len(text)-1] == '\'') {
		text, seen = strings.TrimSpace(text[1:len(text)-1]), append(seen, "in quotes")
	}
	if strings.Contains(text, `\n`) {
		text = strings.NewReplacer(`\r\n`, "\n", `\n`, "\n").Replace(text)
		seen = append(seen, `with \n escapes`)
	}
	lines := strings.Split(strings.ReplaceAll(text, "\r\n", "\n"), "\n")
	indented := false
	for i, l := range lines {
		if t := strings.TrimSpace(l); t != l {
			lines[i], indented = t, indented || t != ""
		}
	}
	if indented {
		seen = append(seen, "with white space around lines")
	}
	return strings.Join(lines, "\n"), seen
}

// Like returns what data is when it looks like a key that PublicKey reads
// ("PEM text", "base64 without PEM armour"), or "".
func Like(data []byte) string {
	text, _ := Text(data)
	switch {
	case strings.Contains(text, "-----BEGIN"):
		return "PEM text"
	case len(text) > 0 && text[0] != '{' && text[0] != '[':
		if _, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(text), "")); err == nil {
			return "base64 without PEM armour"
		}
	}
	return ""
}

// PublicKey returns the first public key of text, which Text returned: of a
// PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE block, or of bare base64 DER
// when text has no BEGIN line. A private key block anywhere in text is a
// [*PrivateBlockError]. A certificate is not verified: only its public key
// is read.
func PublicKey(text string) (any, error) {
	if !strings.Contains(text, "-----BEGIN") {
		der, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(text), ""))
		if err != nil {
			return nil, errors.New("e2ee: no PEM block (no BEGIN line) and not the base64 of a key")
		}
		pub, err := derPublicKey(der, "")
		if err != nil {
			return nil, fmt.Errorf("e2ee: no PEM block (no BEGIN line), and the base64 %w", err)
		}
		return pub, nil
	}
	var pub any
	for rest := []byte(text); ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if strings.Contains(block.Type, "PRIVATE KEY") {
			return nil, &PrivateBlockError{Type: block.Type}
		}
		if pub != nil {
			continue // the first public key is used; later blocks are only checked
		}
		switch block.Type {
		case "PUBLIC KEY", "RSA PUBLIC KEY", "CERTIFICATE":
		default:
			continue
		}
		var err error
		if pub, err = derPublicKey(block.Bytes, block.Type); err != nil {
			return nil, fmt.Errorf("e2ee: PEM %s block: its content %w", redact.Quote(block.Type), err)
		}
	}
	if pub == nil {
		return nil, errors.New("e2ee: no PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE PEM block found")
	}
	return pub, nil
}

// derPublicKey returns the public key of der: a certificate's under a
// CERTIFICATE label, else an SPKI or PKCS#1 public key, whichever label
// (PUBLIC KEY, RSA PUBLIC KEY, or none) it came under, since pasted keys
// often have the other one. Its error says what der is not, and names no
// function of crypto/x509.
func derPublicKey(der []byte, label string) (any, error) {
	if label == "CERTIFICATE" {
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, errors.New("is not a DER certificate")
		}
		return cert.PublicKey, nil
	}
	if pub, err := x509.ParsePKIXPublicKey(der); err == nil {
		return pub, nil
	}
	if pub, err := x509.ParsePKCS1PublicKey(der); err == nil {
		return pub, nil
	}
	return nil, errors.New("is neither an SPKI (PUBLIC KEY) nor a PKCS#1 (RSA PUBLIC KEY) public key")
}
