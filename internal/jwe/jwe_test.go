package jwe

import (
	"encoding/base64"
	"strings"
	"testing"
)

// compact builds a compact JWE of the given header and part sizes.
func compact(header string, ek, iv, ct, tag int) string {
	b := func(n int) string { return base64.RawURLEncoding.EncodeToString(make([]byte, n)) }
	return strings.Join([]string{base64.RawURLEncoding.EncodeToString([]byte(header)), b(ek), b(iv), b(ct), b(tag)}, ".")
}

func TestParse(t *testing.T) {
	const good = `{"alg":"RSA-OAEP-256","enc":"A256GCM","kid":"k1"}`
	if info, ok := Parse(compact(good, 256, 12, 7, 16)); !ok || info.Kid != "k1" || info.KeyLen != 256 || len(info.EncryptedKey) != 342 {
		t.Errorf("Parse(a good JWE) = %+v, %v; want kid k1, 256 bytes of encrypted key", info, ok)
	}
	if _, ok := Parse(compact(`{"kid":"k1","enc":"A256GCM","alg":"RSA-OAEP-256","x5t":"t"}`, 512, 12, 0, 16)); !ok {
		t.Errorf("Parse(members in another order, another member, empty ciphertext) = false; want true")
	}
	for _, tt := range []struct{ name, jwe string }{
		{"alg RSA-OAEP", compact(`{"alg":"RSA-OAEP","enc":"A256GCM","kid":"k"}`, 256, 12, 7, 16)},
		{"enc A256CBC-HS512", compact(`{"alg":"RSA-OAEP-256","enc":"A256CBC-HS512","kid":"k"}`, 256, 16, 7, 32)},
		{"no kid", compact(`{"alg":"RSA-OAEP-256","enc":"A256GCM"}`, 256, 12, 7, 16)},
		{"empty kid", compact(`{"alg":"RSA-OAEP-256","enc":"A256GCM","kid":""}`, 256, 12, 7, 16)},
		{"zip", compact(`{"alg":"RSA-OAEP-256","enc":"A256GCM","kid":"k","zip":"DEF"}`, 256, 12, 7, 16)},
		{"crit", compact(`{"alg":"RSA-OAEP-256","enc":"A256GCM","kid":"k","crit":["b64"]}`, 256, 12, 7, 16)},
		{"duplicate alg", compact(`{"alg":"RSA-OAEP-256","enc":"A256GCM","kid":"k","alg":"RSA-OAEP-256"}`, 256, 12, 7, 16)},
		{"a 16-byte IV", compact(good, 256, 16, 7, 16)},
		{"a 12-byte tag", compact(good, 256, 12, 7, 12)},
		{"a short encrypted key", compact(good, 128, 12, 7, 16)},
		{"four parts", strings.Join(strings.Split(compact(good, 256, 12, 7, 16), ".")[:4], ".")},
		{"six parts", compact(good, 256, 12, 7, 16) + ".AA"},
		{"padding", compact(good, 256, 12, 7, 16) + "=="},
		{"standard base64", strings.Replace(compact(good, 256, 12, 7, 16), "A", "+", 1)},
		{"a line break", strings.Replace(compact(good, 256, 12, 7, 16), ".", ".\n", 1)},
		{"four dots, not a JWE", "S3cr3t.a.b.c.d"},
	} {
		if info, ok := Parse(tt.jwe); ok {
			t.Errorf("Parse(%s) = %+v, true; want false", tt.name, info)
		}
	}
}
