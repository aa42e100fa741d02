package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/credseal/e2ee/internal/fixture"
)

// canary is a credential that must appear in no output of a failed command.
const canary = "canary-S3cr3t-4f1d"

type result struct {
	stdout, stderr string
	code           int
}

// runCLI runs the command in process, as main does.
func runCLI(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(stdin), &stdout, &stderr)
	return result{stdout.String(), stderr.String(), code}
}

// writeFile writes data to a file in a test directory and returns its path.
func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// keyServer serves a JWK on loopback http and returns its URL.
func keyServer(t *testing.T, jwk []byte) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(jwk)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/2.0/publickey"
}

func TestKey(t *testing.T) {
	pub := fixture.Public(fixture.RSA2048A)
	tp := fixture.Thumbprint(pub)
	spki, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	pemFile := writeFile(t, "key.pem", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: spki}))
	for _, tt := range []struct {
		name string
		args []string
		want []string
	}{
		{"provider-shaped file", []string{"key", "../../testdata/provider-key.json"}, []string{
			"kid:        KHSzzFCf7zxjrtBpmuC_FctmYfnTkc_BNwJkJqcIIIc\n", "modulus:    4096 bits\n",
			"thumbprint: KHSzzFCf7zxjrtBpmuC_FctmYfnTkc_BNwJkJqcIIIc (RFC 7638, SHA-256)\n",
			"the kid is the thumbprint\n", "eligible:   yes",
			"pin:        e2ee.FetcherConfig{Thumbprints: []string{\"KHSzzFCf7zxjrtBpmuC_FctmYfnTkc_BNwJkJqcIIIc\"}}\n"}},
		{"URL", []string{"key", keyServer(t, fixture.JWK(pub, map[string]any{"kid": "served"}))}, []string{
			"kid:        served\n", "modulus:    2048 bits\n", "thumbprint: " + tp, "eligible:   yes"}},
		{"PEM with --kid", []string{"key", "--kid", "mine", pemFile}, []string{"kid:        mine\n", "eligible:   yes"}},
		{"PEM, thumbprint kid", []string{"key", pemFile}, []string{"kid:        " + tp + "\n", "the kid is the thumbprint"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(t, "", tt.args...)
			if r.code != 0 {
				t.Fatalf("e2ee %s: exit %d, stderr %q", strings.Join(tt.args, " "), r.code, r.stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(r.stdout, w) {
					t.Errorf("stdout lacks %q:\n%s", w, r.stdout)
				}
			}
		})
	}
}

func TestKeyNotEligible(t *testing.T) {
	for _, tt := range []struct {
		name   string
		data   []byte
		reason string
	}{
		{"1024 bits", fixture.JWK(fixture.Public(fixture.RSA1024), map[string]any{"kid": "k"}), "modulus has 1024 bits"},
		{"signing key", fixture.JWK(fixture.Public(fixture.RSA2048A), map[string]any{"kid": "k", "use": "sig"}), `use is "sig"`},
		{"private key", []byte(mustRead(t, "../../internal/fixture/keys/rsa2048a.pem")), "a client needs only the public key"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(t, "", "key", writeFile(t, "key", tt.data))
			if r.code != 1 {
				t.Errorf("exit %d; want 1", r.code)
			}
			if !strings.HasPrefix(r.stdout, "eligible:   no: ") || !strings.Contains(r.stdout, tt.reason) {
				t.Errorf("stdout = %q; want the verdict no and %q", r.stdout, tt.reason)
			}
			if !strings.Contains(r.stderr, "not eligible") {
				t.Errorf("stderr = %q; want a message", r.stderr)
			}
		})
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestEncrypt(t *testing.T) {
	priv := fixture.Private(fixture.RSA2048A)
	jwk := fixture.JWK(&priv.PublicKey, map[string]any{"kid": "cli"})
	keyFile := writeFile(t, "key.json", jwk)
	body := `{"id_connector": 40, "login": "john", "password": "` + canary + `"}`
	want := `{"id_connector": 40, "login": jwe("john"), "password": jwe("` + canary + `")}`
	for _, tt := range []struct {
		name string
		args []string
	}{
		{"key file, fields", []string{"encrypt", "--key", keyFile, "--field", "/login", "--field", "/password"}},
		{"key URL, request preset", []string{"encrypt", "--key", keyServer(t, jwk), "--request", "connection-create"}},
		{"exclusions", []string{"encrypt", "--key", keyFile, "--field", "/*", "--field", "!/id_connector"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(t, body, tt.args...)
			if r.code != 0 || r.stderr != "" {
				t.Fatalf("exit %d, stderr %q; want 0 and nothing", r.code, r.stderr)
			}
			got, headers, err := fixture.Open([]byte(r.stdout), priv)
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("stdout, decrypted = %s; want %s", got, want)
			}
			for _, h := range headers {
				if h["kid"] != "cli" || h["alg"] != "RSA-OAEP-256" || h["enc"] != "A256GCM" {
					t.Errorf("header %v", h)
				}
			}
			check := runCLI(t, r.stdout, "check", "--field", "/login", "--field", "/password")
			if check.code != 0 {
				t.Errorf("check of the output: exit %d, %s", check.code, check.stderr)
			}
		})
	}
}

// TestFailures runs every failing command with a credential in the body: it
// must show in no output, stdout must be empty, and the status must be 1 or 2.
func TestFailures(t *testing.T) {
	keyFile := writeFile(t, "key.json", fixture.JWK(fixture.Public(fixture.RSA2048A), map[string]any{"kid": "k"}))
	body := `{"login": "` + canary + `", "pin": 1234}`
	for _, tt := range []struct {
		name   string
		stdin  string
		args   []string
		code   int
		reason string
	}{
		{"number in a designated field", body, []string{"encrypt", "--key", keyFile, "--field", "/*"}, 1, "/* is a number"},
		{"invalid JSON", "login=" + canary, []string{"encrypt", "--key", keyFile, "--field", "/login"}, 1, "not valid JSON"},
		{"truncated JSON", `{"login": "` + canary, []string{"encrypt", "--key", keyFile, "--field", "/login"}, 1, "unexpected end of input"},
		{"invalid UTF-8", "{\"login\": \"" + canary + "\xff\"}", []string{"encrypt", "--key", keyFile, "--field", "/login"}, 1, "not valid JSON"},
		{"key URL unreachable", body, []string{"encrypt", "--key", "http://127.0.0.1:1/2.0/publickey", "--field", "/login"}, 1, "fetching key from"},
		{"key URL not https", body, []string{"encrypt", "--key", "http://keys.example/2.0/publickey", "--field", "/login"}, 1, "https"},
		{"key file missing", body, []string{"encrypt", "--key", "/nonexistent/key.json", "--field", "/login"}, 1, "no such file"},
		{"check finds cleartext", body, []string{"check", "--field", "/login"}, 1, "cleartext: /login"},
		{"check finds a number", body, []string{"check", "--request", "connection-create"}, 1, "/* (a number)"},
		{"encrypt refuses a stringified body", `"{\"login\": \"` + canary + `\"}"`, []string{"encrypt", "--key", keyFile, "--field", "/login"}, 1, "the body is a JSON string"},
		{"check refuses a stringified body", `"{\"login\": \"` + canary + `\"}"`, []string{"check", "--request", "connection-create"}, 1, "was it stringified twice?"},
		{"check refuses a body that is null", `null`, []string{"check", "--field", "/login"}, 1, "the body is null"},
		{"check refuses stringified payment fields", `{"fields": "{\"website\": \"` + canary + `\"}"}`, []string{"check", "--request", "payment-validation"}, 1, "/fields is a string, not an object"},
		{"a request's body is an object", `["` + canary + `"]`, []string{"check", "--request", "connection-create"}, 1, "the body is an array, not an object"},
		{"hostile --powens domain", body, []string{"encrypt", "--powens", "evil.com/x", "--field", "/login"}, 1, "powens:"},
		{"no arguments", body, nil, 2, "no command"},
		{"unknown command", body, []string{"decrypt"}, 2, `unknown command "decrypt"`},
		{"no field", body, []string{"encrypt", "--key", keyFile}, 2, "no --field or --request"},
		{"unknown request", body, []string{"check", "--request", "account-list"}, 2, "unknown request"},
		{"bad pattern", body, []string{"check", "--field", "login"}, 2, "JSON Pointer"},
		{"key and --powens", body, []string{"encrypt", "--key", keyFile, "--powens", "acme", "--field", "/login"}, 2, "not both"},
		{"no key", body, []string{"encrypt", "--field", "/login"}, 2, "no key"},
		{"unknown flag", body, []string{"encrypt", "--verbose"}, 2, "flag provided but not defined"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(t, tt.stdin, tt.args...)
			if r.code != tt.code {
				t.Errorf("exit %d; want %d (stderr %q)", r.code, tt.code, r.stderr)
			}
			if r.stdout != "" {
				t.Errorf("stdout = %q; want nothing", r.stdout)
			}
			if !strings.Contains(r.stderr, tt.reason) || !strings.HasPrefix(r.stderr, "e2ee: ") {
				t.Errorf("stderr = %q; want e2ee: ... %q", r.stderr, tt.reason)
			}
			if strings.Contains(r.stderr+r.stdout, canary[:8]) {
				t.Errorf("the credential shows in the output: %q", r.stderr)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	r := runCLI(t, `{"id_connector": 40, "password": null}`, "check", "--request", "connection-create")
	if r.code != 0 || r.stdout != "" || !strings.Contains(r.stderr, "every designated value is encrypted") {
		t.Errorf("check = %+v; want exit 0, no stdout, a message", r)
	}
}

// buildCLI builds the command and returns the path of the binary.
func buildCLI(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "e2ee")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestBinary builds the command and runs it once, as a user does: the other
// tests call run in process.
func TestBinary(t *testing.T) {
	bin := buildCLI(t)
	out, err := exec.Command(bin, "key", "../../testdata/provider-key.json").Output()
	if err != nil || !strings.Contains(string(out), "eligible:   yes") {
		t.Errorf("e2ee key testdata/provider-key.json = %q, %v; want an eligible key", out, err)
	}
	err = exec.Command(bin, "check", "--field", "login").Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
		t.Errorf("e2ee check --field login = %v; want exit status 2", err)
	}

	// The body as a file argument, standard input the null device.
	body := writeFile(t, "body.json", []byte(`{"id_connector": 40, "password": null}`))
	out, err = exec.Command(bin, "check", body, "--request", "connection-create").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "every designated value is encrypted") {
		t.Errorf("e2ee check BODY --request connection-create = %q, %v; want the body checked", out, err)
	}
	// And on standard input too.
	both := exec.Command(bin, "check", "--request", "connection-create", body)
	if both.Stdin, err = os.Open(body); err != nil {
		t.Fatal(err)
	}
	defer both.Stdin.(*os.File).Close()
	out, err = both.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), "two bodies") {
		t.Errorf("e2ee check --request connection-create BODY < BODY = %v, %q; want exit status 2, two bodies", err, out)
	}
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"help"}, {"-h"}, {"--help"}, {"encrypt", "-h"}, {"check", "--help"}, {"key", "-h"}, {"standin", "-h"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			r := runCLI(t, "", args...)
			if r.code != 0 || r.stderr != "" {
				t.Errorf("exit %d, stderr %q; want 0 and nothing", r.code, r.stderr)
			}
			for _, want := range []string{"e2ee encrypt", "e2ee version", "-field PATTERN", "-request NAME",
				"connection-create", "-key URL", "-kid KID", "-powens DOMAIN", "-header HEADER", "-timeout duration",
				"e2ee standin", "-addr HOST:PORT", "-cert FILE", "-http", "-show-values", "-listen-beyond-loopback"} {
				if !strings.Contains(r.stdout, want) {
					t.Errorf("usage lacks %q:\n%s", want, r.stdout)
				}
			}
		})
	}
}

func TestVersion(t *testing.T) {
	r := runCLI(t, "", "version")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "e2ee (devel) (go1.") {
		t.Errorf("e2ee version = %+v; want the module version (devel in tests) and the Go release", r)
	}
}

// TestHeaderNeverEchoed gives --header a value without a colon, such as a
// token pasted alone: the usage error must not show it.
func TestHeaderNeverEchoed(t *testing.T) {
	r := runCLI(t, "", "key", "--header", "Bearer "+canary, "https://keys.example/2.0/publickey")
	if r.code != 2 || !strings.Contains(r.stderr, `--header wants "Name: value"`) {
		t.Errorf("exit %d, stderr %q; want 2 and the form --header wants", r.code, r.stderr)
	}
	if strings.Contains(r.stderr+r.stdout, canary[:8]) {
		t.Errorf("the header's value shows in the output: %q", r.stderr)
	}
}

// TestKeyKidEscaped serves a kid with control characters: e2ee key prints
// it quoted, so that it cannot rewrite the terminal.
func TestKeyKidEscaped(t *testing.T) {
	kid := "k\x1b[2J\u202eevil\n"
	file := writeFile(t, "key.json", fixture.JWK(fixture.Public(fixture.RSA2048A), map[string]any{"kid": kid}))
	r := runCLI(t, "", "key", file)
	if r.code != 0 {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	if want := "kid:        " + strconv.Quote(kid) + "\n"; !strings.Contains(r.stdout, want) {
		t.Errorf("stdout = %q; want %q", r.stdout, want)
	}
	if strings.ContainsAny(r.stdout, "\x1b\u202e") {
		t.Errorf("stdout carries the kid's control characters: %q", r.stdout)
	}
}

// TestREADMEKeySet runs the README's example of a set with no eligible key.
func TestREADMEKeySet(t *testing.T) {
	r := runCLI(t, "", "key", "../../testdata/keys.json")
	want := `eligible:   no: no eligible key in JWK Set: key 0 (kid "sig-2026"): use is "sig", want "enc"; ` +
		`key 1 (kid "old-1024"): modulus has 1024 bits, need at least 2048` + "\n"
	if r.code != 1 || r.stdout != want || r.stderr != "e2ee: key: the key is not eligible\n" {
		t.Errorf("e2ee key testdata/keys.json = %+v; want exit 1, %q", r, want)
	}
}

// TestKeyURLNeverEchoed gives key URLs as a user may type or paste them: a
// scheme in capitals, white space around, a token in the query or the user
// information. Each is taken for a URL, not a file name, and no message
// shows its query or user information.
func TestKeyURLNeverEchoed(t *testing.T) {
	served := keyServer(t, fixture.JWK(fixture.Public(fixture.RSA2048A), map[string]any{"kid": "served"}))
	upper := strings.Replace(served, "http://", "HTTP://", 1)
	const down = "127.0.0.1:1" // nothing listens there
	for _, tt := range []struct {
		name   string
		args   []string
		code   int
		reason string // stderr says this; "" for success
	}{
		{"capitals", []string{"key", upper + "?token=" + canary}, 0, ""},
		{"mixed case, spaces around", []string{"key", " \t" + strings.Replace(served, "http", "hTtP", 1) + "?token=" + canary + " \n"}, 0, ""},
		{"--key in capitals", []string{"encrypt", "--key", upper + "?token=" + canary, "--field", "/login"}, 0, ""},
		{"capitals, query, unreachable", []string{"key", "HTTP://" + down + "/key?token=" + canary}, 1, "fetching key from"},
		{"leading space, https, unreachable", []string{"key", " https://" + down + "/key?token=" + canary}, 1, "fetching key from"},
		{"token as user name", []string{"key", "HTTP://" + canary + "@" + down + "/key"}, 1, "fetching key from"},
		{"token as user name, empty password", []string{"key", " http://" + canary + ":@" + down + "/key"}, 1, "fetching key from"},
		{"token as password", []string{"key", "Http://user:" + canary + "@" + down + "/key"}, 1, "fetching key from"},
		{"--key, token as user name", []string{"encrypt", "--key", " HTTPS://" + canary + "@" + down + "/key ", "--field", "/login"}, 1, "fetching key from"},
		{"not https", []string{"key", "HTTP://" + canary + "@keys.example/key?token=" + canary}, 1, "is not https"},
		{"no //", []string{"key", "HTTPS:" + canary + "@keys.example/key?token=" + canary}, 1, "has no host"},
		{"another scheme", []string{"key", "FTP://" + canary + "@keys.example/key?token=" + canary}, 1, "is not https"},
		{"no scheme: a file", []string{"key", "keys.example/key?token=" + canary}, 1, "reading the key file: no such file"},
		{"a URL for a command", []string{"HTTPS://" + canary + "@keys.example/key?token=" + canary}, 2, `unknown command "https://keys.example/key"`},
		{"a URL for --powens", []string{"key", "--powens", "https://" + canary + "@acme.biapi.pro/?token=" + canary}, 2, "--powens wants the domain name alone"},
		{"a token for --powens", []string{"key", "--powens", "acme?token=" + canary}, 2, "--powens wants the domain name alone"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(t, `{"login": "x"}`, tt.args...)
			if r.code != tt.code {
				t.Errorf("exit %d; want %d (stderr %q)", r.code, tt.code, r.stderr)
			}
			if tt.reason == "" {
				if r.stderr != "" || !strings.Contains(r.stdout, "kid:        served\n") && !strings.Contains(r.stdout, `"login": "eyJ`) {
					t.Errorf("stdout %q, stderr %q; want the served key, or a body encrypted with it, and no message", r.stdout, r.stderr)
				}
			} else if !strings.HasPrefix(r.stderr, "e2ee: ") || !strings.Contains(r.stderr, tt.reason) {
				t.Errorf("stderr = %q; want e2ee: ... %q", r.stderr, tt.reason)
			}
			if strings.Contains(r.stderr+r.stdout, canary[:8]) {
				t.Errorf("the URL's token shows in the output: stdout %q, stderr %q", r.stdout, r.stderr)
			}
		})
	}
}

// TestKeyPEMTypeEscaped reads PEM files whose type lines carry control
// characters: what e2ee key prints of them is quoted, so that a key file
// cannot rewrite the terminal.
func TestKeyPEMTypeEscaped(t *testing.T) {
	for _, tt := range []struct {
		name, data, reason string
	}{
		{"private key", "-----BEGIN \x1b[2J\u202eRSA PRIVATE KEY-----\nMAE=\n-----END \x1b[2J\u202eRSA PRIVATE KEY-----\n", "a client needs only the public key"},
		{"public key", "-----BEGIN \x1b[2JPUBLIC KEY-----\nMAE=\n-----END \x1b[2JPUBLIC KEY-----\n", "no PUBLIC KEY"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(t, "", "key", writeFile(t, "key.pem", []byte(tt.data)))
			if r.code != 1 || !strings.Contains(r.stdout+r.stderr, tt.reason) {
				t.Errorf("exit %d, stdout %q, stderr %q; want 1 and %q", r.code, r.stdout, r.stderr, tt.reason)
			}
			if strings.ContainsAny(r.stdout+r.stderr, "\x1b\u202e") {
				t.Errorf("the PEM type line's control characters reach the terminal: stdout %q, stderr %q", r.stdout, r.stderr)
			}
		})
	}
}

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
