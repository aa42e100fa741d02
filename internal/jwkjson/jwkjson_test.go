package jwkjson

import (
	"strings"
	"testing"

	jsonv2 "github.com/go-json-experiment/json"
)

func decode(t *testing.T, s string) Object {
	t.Helper()
	var obj Object
	if err := jsonv2.Unmarshal([]byte(s), &obj); err != nil {
		t.Fatal(err)
	}
	return obj
}

func TestMembers(t *testing.T) {
	obj := decode(t, `{"kid": "k1", "n": "AQAB", "padded": "AQAB==", "num": 3, "empty": "", "bad": "!!"}`)
	if s, err := RequiredString(obj, "kid"); s != "k1" || err != nil {
		t.Errorf(`RequiredString("kid") = %q, %v`, s, err)
	}
	if _, ok, err := OptionalString(obj, "use"); ok || err != nil {
		t.Errorf(`OptionalString("use") = %v, %v; want absent`, ok, err)
	}
	if n, err := BigInt(obj, "n"); err != nil || n.Int64() != 65537 {
		t.Errorf(`BigInt("n") = %v, %v; want 65537`, n, err)
	}
	if n, err := BigInt(obj, "padded"); err != nil || n.Int64() != 65537 {
		t.Errorf(`BigInt("padded") = %v, %v; want 65537`, n, err)
	}
	for name, want := range map[string]string{
		"missing": "missing is missing",
		"num":     "num is not a string",
		"empty":   "empty is empty",
		"bad":     "bad is not base64url",
	} {
		if _, err := BigInt(obj, name); err == nil || err.Error() != want {
			t.Errorf("BigInt(%q) = %v; want %q", name, err, want)
		}
	}
	if got := KidSuffix(obj); got != ` (kid "k1")` {
		t.Errorf("KidSuffix = %q", got)
	}
	if got := KidSuffix(decode(t, `{"kid": 1}`)); got != "" {
		t.Errorf("KidSuffix of a numeric kid = %q; want none", got)
	}
}

func TestDuplicateName(t *testing.T) {
	var obj Object
	err := jsonv2.Unmarshal([]byte(`{"use": "sig", "use": "enc"}`), &obj)
	if got := DuplicateName(err); got != `duplicate member name "use" in the key` {
		t.Errorf("DuplicateName = %q", got)
	}
	var set struct{ Keys []Object }
	err = jsonv2.Unmarshal([]byte(`{"keys": [{"e": "AQAB", "e": "Aw"}]}`), &set)
	if got := DuplicateName(err); !strings.Contains(got, `"e" in "/keys/0"`) {
		t.Errorf("DuplicateName in a set = %q", got)
	}
	if got := DuplicateName(jsonv2.Unmarshal([]byte(`{`), &obj)); got != "" {
		t.Errorf("DuplicateName of a syntax error = %q; want none", got)
	}
}
