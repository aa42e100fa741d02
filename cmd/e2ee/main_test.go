package main

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/credseal/e2ee/internal/fixture"
)

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

// TestREADMETranscript runs the examples of README.md with the repository's
// testdata and checks that the README shows each command with what it
// prints: standard output, standard error, then the exit status where the
// example echoes it. Of encrypt's output, random, it checks the start, up
// to the end of the first JWE's header.
func TestREADMETranscript(t *testing.T) {
	data, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(data)
	const body = `{"id_connector": 40, "login": "john.doe", "password": "hunter2"}` + "\n"
	const encryptLine = "$ e2ee encrypt --key testdata/key.json --request connection-create < body.json"
	encrypted := runCLI(t, body, "encrypt", "--key", "../../testdata/key.json", "--request", "connection-create")
	if encrypted.code != 0 {
		t.Fatalf("%s = %+v; want exit 0", encryptLine, encrypted)
	}
	t.Run("encrypt", func(t *testing.T) {
		want := "$ echo '" + strings.TrimSuffix(body, "\n") + "' > body.json\n" + encryptLine + "\n" +
			encrypted.stdout[:strings.Index(encrypted.stdout, ".")+1]
		if !strings.Contains(readme, want) {
			t.Errorf("README.md lacks\n%s", want)
		}
	})
	tests := []struct {
		name, shown, stdin string
		args               []string
		exit               bool // the example echoes the exit status; else it is 0
	}{
		{"an eligible key", "$ e2ee key testdata/provider-key.json", "", []string{"key", "../../testdata/provider-key.json"}, false},
		{"no eligible key", `$ e2ee key testdata/keys.json; echo "exit $?"`, "", []string{"key", "../../testdata/keys.json"}, true},
		{"check in cleartext", `$ e2ee check --request connection-create < body.json; echo "exit $?"`, body,
			[]string{"check", "--request", "connection-create"}, true},
		{"check encrypted", encryptLine + " | e2ee check --request connection-create", encrypted.stdout,
			[]string{"check", "--request", "connection-create"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(t, tt.stdin, tt.args...)
			want := tt.shown + "\n" + r.stdout + r.stderr
			switch {
			case tt.exit:
				want += "exit " + strconv.Itoa(r.code) + "\n"
			case r.code != 0:
				t.Errorf("%s: exit %d; want 0", tt.shown, r.code)
			}
			if !strings.Contains(readme, want) {
				t.Errorf("README.md lacks\n%s", want)
			}
		})
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
