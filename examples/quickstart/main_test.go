package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), &out); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	if !strings.HasPrefix(got, "the API here is a local stand-in (e2eetest, on https://127.0.0.1:") {
		t.Errorf("output does not start by saying that the API is a local stand-in:\n%s", got)
	}
	_, wire, ok := strings.Cut(got, "  ↓\n")
	if !ok {
		t.Fatalf("output lacks the request as sent:\n%s", got)
	}
	wire, decrypted, ok := strings.Cut(wire, "the API decrypts (here, the stand-in, with the test key's private half):")
	if !ok {
		t.Fatalf("output lacks the decrypted body:\n%s", got)
	}
	for _, secret := range []string{"john.doe", "hunter2"} {
		if strings.Contains(wire, secret) {
			t.Errorf("the request as sent carries %q in cleartext:\n%s", secret, wire)
		}
	}
	for _, want := range []string{
		"POST https://acme.biapi.pro/2.0/users/me/connections (200 OK, from the stand-in)",
		`"id_connector": 40`,
		`protected header of each value: {"alg":"RSA-OAEP-256","enc":"A256GCM","kid":"`,
	} {
		if !strings.Contains(wire, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if want := `{"id_connector": 40, "login": "john.doe", "password": "hunter2"}`; !strings.Contains(decrypted, want) {
		t.Errorf("the API decrypted %q; want %s", decrypted, want)
	}
}
