package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/credseal/e2ee/internal/fixture"
)

// TestBodyFile gives encrypt and check the body as a file argument, before
// or after the flags, or "-" for standard input.
func TestBodyFile(t *testing.T) {
	priv := fixture.Private(fixture.RSA2048A)
	keyFile := writeFile(t, "key.json", fixture.JWK(&priv.PublicKey, map[string]any{"kid": "cli"}))
	bodyFile := writeFile(t, "body.json", []byte(`{"id_connector": 40, "login": "john", "password": "`+canary+`"}`))
	want := `{"id_connector": 40, "login": jwe("john"), "password": jwe("` + canary + `")}`
	for _, tt := range []struct {
		name  string
		stdin string
		args  []string
	}{
		{"file after the flags", "", []string{"encrypt", "--key", keyFile, "--request", "connection-create", bodyFile}},
		{"file before the flags", "", []string{"encrypt", bodyFile, "--key", keyFile, "--field", "/login", "--field", "/password"}},
		{"file between the flags", "", []string{"encrypt", "--key", keyFile, bodyFile, "--request", "connection-create"}},
		{"file after --", "", []string{"encrypt", "--key", keyFile, "--request", "connection-create", "--", bodyFile}},
		{"- for standard input", mustRead(t, bodyFile), []string{"encrypt", "--key", keyFile, "--request", "connection-create", "-"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(t, tt.stdin, tt.args...)
			if r.code != 0 || r.stderr != "" {
				t.Fatalf("exit %d, stderr %q; want 0 and nothing", r.code, r.stderr)
			}
			got, _, err := fixture.Open([]byte(r.stdout), priv)
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("stdout, decrypted = %s; want %s", got, want)
			}
			encrypted := writeFile(t, "encrypted.json", []byte(r.stdout))
			if c := runCLI(t, "", "check", encrypted, "--request", "connection-create"); c.code != 0 {
				t.Errorf("check FILE of the output: exit %d, %s", c.code, c.stderr)
			}
		})
	}
	r := runCLI(t, "", "check", "--request", "connection-create", bodyFile)
	if r.code != 1 || !strings.Contains(r.stderr, "designated value in cleartext: /*, /*") {
		t.Errorf("check FILE in cleartext: exit %d, stderr %q; want 1 and the fields in cleartext", r.code, r.stderr)
	}
}

// TestBodyFileAmbiguous gives encrypt and check a body in two places, in
// none, or an argument that is not a file name: each is refused with a
// message that says what to give, and shows neither the argument nor the
// body.
func TestBodyFileAmbiguous(t *testing.T) {
	keyFile := writeFile(t, "key.json", fixture.JWK(fixture.Public(fixture.RSA2048A), map[string]any{"kid": "k"}))
	body := `{"login": "` + canary + `"}`
	bodyFile := writeFile(t, "body.json", []byte(body))
	missing := filepath.Join(t.TempDir(), canary+".json")
	enc := []string{"encrypt", "--key", keyFile, "--field", "/login"}
	for _, tt := range []struct {
		name   string
		stdin  string
		args   []string
		code   int
		reason string
	}{
		{"file and standard input", body, append(enc, bodyFile), 2, "two bodies: a BODY file and standard input; give one"},
		{"check: file and standard input", body, []string{"check", "--field", "/login", bodyFile}, 2, "two bodies"},
		{"- and standard input empty", "", append(enc, "-"), 2, "no body: give a BODY file, or the body on standard input"},
		{"no body", "", enc, 2, "no body"},
		{"check: no body", "", []string{"check", "--field", "/login"}, 2, "no body"},
		{"two files", "", append(enc, bodyFile, bodyFile), 2, "2 arguments: give one BODY file"},
		{"a key file as argument, no --key", body, []string{"encrypt", "--field", "/login", keyFile}, 2, "no key: give --key URL|FILE or --powens DOMAIN (an argument is the BODY file, not the key)"},
		{"a key URL as argument", body, []string{"encrypt", "--key", keyFile, "--field", "/login", "https://keys.example/key?token=" + canary}, 2, "the argument is a URL, not a BODY file: give a key URL as --key URL"},
		{"check: a key URL as argument", "", []string{"check", "--field", "/login", "HTTPS://keys.example/key?token=" + canary}, 2, "check needs no key"},
		{"JSON text as argument", "", append(enc, body), 2, "the argument is JSON text, not a BODY file name"},
		{"check: JSON text as argument", "", []string{"check", "--field", "/login", " " + body}, 2, "the argument is JSON text"},
		{"a file that is not there", "", append(enc, missing), 1, "reading the body file: no such file or directory"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(t, tt.stdin, tt.args...)
			if r.code != tt.code || r.stdout != "" {
				t.Errorf("exit %d, stdout %q; want %d and nothing", r.code, r.stdout, tt.code)
			}
			if !strings.HasPrefix(r.stderr, "e2ee: ") || !strings.Contains(r.stderr, tt.reason) {
				t.Errorf("stderr = %q; want e2ee: ... %q", r.stderr, tt.reason)
			}
			if strings.Contains(r.stderr, canary[:8]) {
				t.Errorf("the argument or the body shows in the output: %q", r.stderr)
			}
		})
	}
}

// TestBodyOnStandardInput tells a body on standard input from none as the
// command sees it: a file, a pipe, the null device.
func TestBodyOnStandardInput(t *testing.T) {
	bodyFile := writeFile(t, "body.json", []byte(`{"login": null}`))
	empty := writeFile(t, "empty.json", nil)
	open := func(name string) *os.File {
		f, err := os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	pipe := func() *os.File {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		go func() { w.WriteString(`{"login": null}`); w.Close() }()
		t.Cleanup(func() { r.Close() })
		return r
	}
	for _, tt := range []struct {
		name  string
		stdin func() *os.File
		want  bool
	}{
		{"a file", func() *os.File { return open(bodyFile) }, true},
		{"an empty file", func() *os.File { return open(empty) }, false},
		{"a pipe", pipe, true},
		{"the null device", func() *os.File { return open(os.DevNull) }, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			stdin := tt.stdin()
			if got := stdinHasData(stdin); got != tt.want {
				t.Errorf("stdinHasData(%s) = %v; want %v", tt.name, got, tt.want)
			}
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), []string{"check", "--field", "/login"}, stdin, &stdout, &stderr)
			if want := map[bool]int{true: 0, false: 2}[tt.want]; code != want {
				t.Errorf("check < %s: exit %d, stderr %q; want %d", tt.name, code, stderr.String(), want)
			}
		})
	}
}
