package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	var out bytes.Buffer
	if err := run(&out); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	sent, _, ok := strings.Cut(got, "protected header")
	if !ok {
		t.Fatalf("output has no protected header line:\n%s", got)
	}
	for _, secret := range []string{"john.doe", "hunter2"} {
		if strings.Contains(sent, secret) {
			t.Errorf("the body as sent contains %q in cleartext:\n%s", secret, sent)
		}
	}
	for _, want := range []string{
		`"id_connector": 40`,
		`{"alg":"RSA-OAEP-256","enc":"A256GCM","kid":"`,
		"the API decrypts login: john.doe\n",
		"the API decrypts password: hunter2\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
}
