package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// This file's client of the stand-in is not this SDK: it reads the key and
// makes its JWEs with the standard library only, as an implementation in
// another language would, so that the stand-in is tested against the
// format, not against the SDK's own reading of it.

// fetchRSAKey fetches the JWK served at url and returns its RSA public key
// and kid.
func fetchRSAKey(client *http.Client, url string) (*rsa.PublicKey, string, error) {
	resp, err := client.Get(url)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, "", fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	var jwk struct {
		Kty, Kid, N, E string
	}
	if err := json.NewDecoder(resp.Body).Decode(&jwk); err != nil {
		return nil, "", err
	}
	n, err := base64.RawURLEncoding.DecodeString(jwk.N)
	if err != nil {
		return nil, "", fmt.Errorf("n: %w", err)
	}
	e, err := base64.RawURLEncoding.DecodeString(jwk.E)
	if err != nil {
		return nil, "", fmt.Errorf("e: %w", err)
	}
	if jwk.Kty != "RSA" || jwk.Kid == "" || len(e) == 0 || len(e) > 4 {
		return nil, "", fmt.Errorf("not an RSA key with a kid: kty %q, kid %q", jwk.Kty, jwk.Kid)
	}
	return &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}, jwk.Kid, nil
}

// encryptJWE returns the compact JWE of plaintext: RSA-OAEP with SHA-256
// for a fresh 256-bit content key, AES-256-GCM with a 96-bit IV, the
// protected header as additional data.
func encryptJWE(pub *rsa.PublicKey, kid, plaintext string) (string, error) {
	header, err := json.Marshal(map[string]string{"alg": "RSA-OAEP-256", "enc": "A256GCM", "kid": kid})
	if err != nil {
		return "", err
	}
	b64 := base64.RawURLEncoding.EncodeToString
	protected := b64(header)
	cek := make([]byte, 32)
	iv := make([]byte, 12)
	rand.Read(cek)
	rand.Read(iv)
	encryptedKey, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, pub, cek, nil)
	if err != nil {
		return "", err
	}
	block, err := aes.NewCipher(cek)
	if err != nil {
		return "", err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return "", err
	}
	sealed := gcm.Seal(nil, iv, []byte(plaintext), []byte(protected))
	ciphertext, tag := sealed[:len(sealed)-gcm.Overhead()], sealed[len(sealed)-gcm.Overhead():]
	return strings.Join([]string{protected, b64(encryptedKey), b64(iv), b64(ciphertext), b64(tag)}, "."), nil
}

// connectionBody returns a connection creation's body: with login and
// password as JWEs of pub when pub is not nil, in cleartext otherwise.
func connectionBody(t *testing.T, pub *rsa.PublicKey, kid, login, password string) string {
	t.Helper()
	if pub != nil {
		var err error
		if login, err = encryptJWE(pub, kid, login); err != nil {
			t.Fatal(err)
		}
		if password, err = encryptJWE(pub, kid, password); err != nil {
			t.Fatal(err)
		}
	}
	b, err := json.Marshal(map[string]any{"id_connector": 40, "login": login, "password": password})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// post posts body as JSON to url and returns the status.
func post(client *http.Client, url, body string) (int, error) {
	resp, err := client.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// certClient returns a client that trusts the certificate in the PEM file
// path and no other.
func certClient(t *testing.T, path string) *http.Client {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading the certificate: %v", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(data) {
		t.Fatalf("the certificate file holds no PEM certificate:\n%s", data)
	}
	return &http.Client{
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}},
		Timeout:   10 * time.Second,
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// standinRun is an e2ee standin running in process.
type standinRun struct {
	url    string      // the first line of its output
	lines  chan string // the lines of its output after the first
	stderr *syncBuffer // its messages
	cancel func()      // interrupts it
	done   chan int    // its exit status, once it returns
}

// startStandin runs e2ee standin args in process, as main does, and returns
// once it has printed its base URL. The test's end stops it.
func startStandin(t *testing.T, args ...string) *standinRun {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	s := &standinRun{lines: make(chan string, 256), stderr: &syncBuffer{}, cancel: cancel, done: make(chan int, 1)}
	go func() {
		code := run(ctx, append([]string{"standin"}, args...), strings.NewReader(""), pw, s.stderr)
		pw.Close()
		s.done <- code
	}()
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			s.lines <- sc.Text()
		}
		close(s.lines)
	}()
	t.Cleanup(func() { s.stop(t) })
	first, ok := s.next(t)
	if !ok {
		t.Fatalf("e2ee standin %s ended: exit %d, stderr %q", strings.Join(args, " "), <-s.done, s.stderr)
	}
	s.url = first
	return s
}

// next returns the next line of output, and false when there is none.
func (s *standinRun) next(t *testing.T) (string, bool) {
	t.Helper()
	select {
	case line, ok := <-s.lines:
		return line, ok
	case <-time.After(10 * time.Second):
		t.Fatalf("no output line in 10 s; stderr %q", s.stderr)
		return "", false
	}
}

// stop interrupts it, as SIGINT does, and returns its exit status.
func (s *standinRun) stop(t *testing.T) int {
	s.cancel()
	select {
	case code := <-s.done:
		s.done <- code // for another stop
		return code
	case <-time.After(10 * time.Second):
		t.Fatalf("e2ee standin did not stop in 10 s")
		return -1
	}
}

// wantLines reads the next lines of output and compares them with want.
func (s *standinRun) wantLines(t *testing.T, want ...string) {
	t.Helper()
	for _, w := range want {
		got, ok := s.next(t)
		if !ok {
			t.Fatalf("output ended; want %q", w)
		}
		if got != w {
			t.Errorf("output line\n%s\nwant\n%s", got, w)
		}
	}
}

// TestStandin serves the stand-in over HTTPS, in process: a client that is
// not this SDK, trusting the certificate file as its only root, fetches the
// key, posts a connection creation encrypted (200) and one in cleartext
// (400), and each request gets its line; values show only with
// --show-values, marked as test values.
func TestStandin(t *testing.T) {
	for _, tt := range []struct {
		name  string
		args  []string
		lines []string
	}{
		{"fields", nil, []string{
			"GET /2.0/publickey 200",
			"POST /2.0/users/me/connections 200 encrypted: /login, /password; cleartext: none",
			"POST /2.0/users/me/connections 400 encrypted: none; cleartext: /login, /password",
		}},
		{"values", []string{"--show-values"}, []string{
			"GET /2.0/publickey 200",
			`POST /2.0/users/me/connections 200 encrypted: /login="john.doe" (test value), /password="hunter2 ü" (test value); cleartext: none`,
			`POST /2.0/users/me/connections 400 encrypted: none; cleartext: /login="jane.doe" (test value), /password="` + canary + `" (test value)`,
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			certFile := filepath.Join(t.TempDir(), "standin.pem")
			s := startStandin(t, append([]string{"--addr", "127.0.0.1:0", "--cert", certFile}, tt.args...)...)
			u, err := url.Parse(s.url)
			if err != nil || u.Scheme != "https" || u.Hostname() != "127.0.0.1" || u.Port() == "0" || u.Path != "" {
				t.Fatalf("first line %q; want https://127.0.0.1:port", s.url)
			}
			client := certClient(t, certFile)

			pub, kid, err := fetchRSAKey(client, s.url+"/2.0/publickey")
			if err != nil {
				t.Fatal(err)
			}
			if got, err := post(client, s.url+"/2.0/users/me/connections", connectionBody(t, pub, kid, "john.doe", "hunter2 ü")); got != 200 || err != nil {
				t.Errorf("POST of encrypted credentials = %d, %v; want 200", got, err)
			}
			if got, err := post(client, s.url+"/2.0/users/me/connections", connectionBody(t, nil, "", "jane.doe", canary)); got != 400 || err != nil {
				t.Errorf("POST of credentials in cleartext = %d, %v; want 400", got, err)
			}
			s.wantLines(t, tt.lines...)
			if code := s.stop(t); code != 0 {
				t.Errorf("exit %d after the interrupt; want 0", code)
			}
			if _, ok := <-s.lines; ok {
				t.Errorf("more output after the requests")
			}
			stderr := s.stderr.String()
			if !strings.Contains(stderr, "the certificate, new at each start, is in "+certFile) ||
				!strings.Contains(stderr, "the key is at "+s.url+"/2.0/publickey (kid "+kid+")") {
				t.Errorf("stderr = %q; want where the certificate and the key are", stderr)
			}
			if tt.args == nil && strings.Contains(stderr, canary[:8]) {
				t.Errorf("a value shows without --show-values: %q", stderr)
			}
			if _, err := os.Stat(certFile); err != nil {
				t.Errorf("the --cert file is gone after the stand-in stopped: %v", err)
			}
		})
	}
}

// TestStandinCertificate checks what a client that trusts the certificate
// can rely on: it names 127.0.0.1, ::1 and localhost, and it is new at each
// start; and that the default file, in the temporary directory, goes when
// the stand-in stops.
func TestStandinCertificate(t *testing.T) {
	dir := t.TempDir()
	for _, v := range []string{"TMPDIR", "TMP", "TEMP"} { // os.TempDir on Unix and Windows
		t.Setenv(v, dir)
	}
	s := startStandin(t, "--addr", "127.0.0.1:0")
	var certFile string
	for _, line := range strings.Split(s.stderr.String(), "\n") {
		if _, rest, ok := strings.Cut(line, "the certificate, new at each start, is in "); ok {
			certFile, _, _ = strings.Cut(rest, ":")
		}
	}
	if filepath.Dir(certFile) != dir {
		t.Fatalf("stderr %q; want the certificate's file, in %s", s.stderr, dir)
	}
	data, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	client := certClient(t, certFile)
	port := strings.TrimPrefix(s.url, "https://127.0.0.1:")
	for _, host := range []string{"127.0.0.1", "localhost"} {
		if _, _, err := fetchRSAKey(client, "https://"+net.JoinHostPort(host, port)+"/2.0/publickey"); err != nil {
			t.Errorf("GET the key at %s: %v", host, err)
		}
	}
	s.wantLines(t, "GET /2.0/publickey 200", "GET /2.0/publickey 200")
	if code := s.stop(t); code != 0 {
		t.Errorf("exit %d; want 0", code)
	}
	if _, err := os.Stat(certFile); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the default certificate file is left after the stand-in stopped: %v", err)
	}

	// The certificate itself.
	cert := parseCertificate(t, data)
	if !slices.Equal(cert.DNSNames, []string{"localhost"}) || len(cert.IPAddresses) != 2 ||
		!cert.IPAddresses[0].Equal([]byte{127, 0, 0, 1}) || cert.IPAddresses[1].String() != "::1" {
		t.Errorf("certificate names %v %v; want localhost, 127.0.0.1 and ::1", cert.DNSNames, cert.IPAddresses)
	}
	// And another for the next start.
	next := filepath.Join(t.TempDir(), "next.pem")
	s2 := startStandin(t, "--addr", "127.0.0.1:0", "--cert", next)
	s2.stop(t)
	if again := parseCertificate(t, []byte(mustRead(t, next))); again.Equal(cert) {
		t.Errorf("the same certificate at the next start")
	}
}

// parseCertificate parses data, which must be one PEM certificate and
// nothing else.
func parseCertificate(t *testing.T, data []byte) *x509.Certificate {
	t.Helper()
	block, rest := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" || len(rest) != 0 {
		t.Fatalf("not one PEM certificate: %q", data)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// TestStandinHTTP serves plain HTTP on loopback with --http.
func TestStandinHTTP(t *testing.T) {
	s := startStandin(t, "--http", "--addr", "127.0.0.1:0", "--show-values")
	if !strings.HasPrefix(s.url, "http://127.0.0.1:") {
		t.Fatalf("first line %q; want http://127.0.0.1:port", s.url)
	}
	client := &http.Client{Timeout: 10 * time.Second}
	pub, kid, err := fetchRSAKey(client, s.url+"/2.0/publickey")
	if err != nil {
		t.Fatal(err)
	}
	// A connection update, with a JWE the stand-in cannot decrypt beside
	// the good one: its kid is no key it served.
	other, err := encryptJWE(pub, "not-"+kid, "x")
	if err != nil {
		t.Fatal(err)
	}
	good, err := encryptJWE(pub, kid, "123456")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := post(client, s.url+"/2.0/users/me/connections/7", `{"otp":"`+good+`"}`); got != 200 || err != nil {
		t.Errorf("POST = %d, %v; want 200", got, err)
	}
	if got, err := post(client, s.url+"/2.0/users/me/connections/7", `{"otp":"`+other+`","pin":"`+good+`"}`); got != 400 || err != nil {
		t.Errorf("POST with a JWE of an unknown kid = %d, %v; want 400", got, err)
	}
	resp, err := client.Post(s.url+"/2.0/users/me/connections", "application/x-www-form-urlencoded", strings.NewReader("login=john&password="+canary))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	s.wantLines(t,
		"GET /2.0/publickey 200",
		`POST /2.0/users/me/connections/7 200 encrypted: /otp="123456" (test value); cleartext: none`,
		`POST /2.0/users/me/connections/7 400 encrypted: /otp (did not decrypt), /pin="123456" (test value); cleartext: none `+
			`(e2eetest: unknown kid "not-`+kid+`": the server never served it (the JWE at "/otp"))`,
		`POST /2.0/users/me/connections 400 (e2eetest: the API refuses what an e2ee.Transport would not send: e2ee: body is not JSON: `+
			`Content-Type is "application/x-www-form-urlencoded": end-to-end encryption applies to JSON bodies only (request not sent: route "/users/{user}/connections"))`,
	)
	if strings.Contains(s.stderr.String(), "certificate") {
		t.Errorf("stderr = %q; want no certificate over plain HTTP", s.stderr)
	}
}

// TestStandinConcurrent sends requests at once: each line has its own
// request's method, path, status and fields.
func TestStandinConcurrent(t *testing.T) {
	s := startStandin(t, "--http", "--addr", "127.0.0.1:0", "--show-values")
	client := &http.Client{Timeout: 10 * time.Second}
	pub, kid, err := fetchRSAKey(client, s.url+"/2.0/publickey")
	if err != nil {
		t.Fatal(err)
	}
	s.wantLines(t, "GET /2.0/publickey 200")

	const n = 32
	want := map[string]bool{}
	bodies := make([]string, n)
	for i := range n {
		// Even requests encrypted, odd ones in cleartext; each its user
		// in the path and its password.
		password := "pw" + strconv.Itoa(i)
		if i%2 == 0 {
			bodies[i] = connectionBody(t, pub, kid, "u", password)
			want[fmt.Sprintf(`POST /2.0/users/%d/connections 200 encrypted: /login="u" (test value), /password=%q (test value); cleartext: none`, i, password)] = true
		} else {
			bodies[i] = connectionBody(t, nil, "", "u", password)
			want[fmt.Sprintf(`POST /2.0/users/%d/connections 400 encrypted: none; cleartext: /login="u" (test value), /password=%q (test value)`, i, password)] = true
		}
	}
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if _, err := post(client, fmt.Sprintf("%s/2.0/users/%d/connections", s.url, i), bodies[i]); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	for range n {
		line, ok := s.next(t)
		if !ok {
			t.Fatal("output ended")
		}
		if !want[line] {
			t.Errorf("line %q: not one of the requests sent, or seen twice", line)
		}
		delete(want, line)
	}
}

// TestStandinRefusesBeyondLoopback gives addresses that are not loopback:
// each is refused before anything listens, unless
// --listen-beyond-loopback says so, and then not with --http.
func TestStandinRefusesBeyondLoopback(t *testing.T) {
	for _, tt := range []struct {
		args   []string
		reason string
	}{
		{[]string{"--addr", "0.0.0.0:0"}, `--addr "0.0.0.0:0" is not a loopback address`},
		{[]string{"--addr", "192.0.2.1:0"}, `--addr "192.0.2.1:0" is not a loopback address`},
		{[]string{"--addr", "[::]:0"}, "is not a loopback address"},
		{[]string{"--addr", ":0"}, "is not a loopback address"},
		{[]string{"--addr", "example.com:0"}, "is not a loopback address"},
		{[]string{"--addr", "127.0.0.1.nip.io:0"}, "is not a loopback address"},
		{[]string{"--addr", "[::ffff:192.0.2.1]:0"}, "is not a loopback address"},
		{[]string{"--http", "--addr", "0.0.0.0:0"}, "is not a loopback address"},
		{[]string{"--http", "--listen-beyond-loopback", "--addr", "0.0.0.0:0"}, "--http serves on loopback only"},
		{[]string{"--addr", "127.0.0.1"}, "want HOST:PORT"},
		{[]string{"--http", "--cert", "x.pem"}, "with --http there is no certificate"},
		{[]string{"127.0.0.1:0"}, "standin takes no arguments"},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			r := runCLI(t, "", append([]string{"standin"}, tt.args...)...)
			if r.code != 2 || r.stdout != "" {
				t.Errorf("exit %d, stdout %q; want 2 and nothing", r.code, r.stdout)
			}
			if !strings.HasPrefix(r.stderr, "e2ee: standin") || !strings.Contains(r.stderr, tt.reason) {
				t.Errorf("stderr = %q; want e2ee: standin ... %q", r.stderr, tt.reason)
			}
		})
	}

	t.Run("--listen-beyond-loopback", func(t *testing.T) {
		s := startStandin(t, "--listen-beyond-loopback", "--addr", "0.0.0.0:0", "--cert", filepath.Join(t.TempDir(), "c.pem"))
		if !strings.HasPrefix(s.url, "https://127.0.0.1:") {
			t.Errorf("first line %q; want https://127.0.0.1:port", s.url)
		}
		if !strings.Contains(s.stderr.String(), "WARNING: listening beyond loopback, on 0.0.0.0:") ||
			!strings.Contains(s.stderr.String(), "public test keys") {
			t.Errorf("stderr = %q; want a warning that the keys are public test keys", s.stderr)
		}
	})
}

// TestStandinBusyAddress tries an address in use.
func TestStandinBusyAddress(t *testing.T) {
	s := startStandin(t, "--http", "--addr", "127.0.0.1:0")
	r := runCLI(t, "", "standin", "--http", "--addr", strings.TrimPrefix(s.url, "http://"))
	if r.code != 1 || !strings.Contains(r.stderr, "address already in use") || !strings.Contains(r.stderr, "127.0.0.1:0 picks a free port") {
		t.Errorf("exit %d, stderr %q; want 1, address already in use and the way out", r.code, r.stderr)
	}
}

// TestStandinBinary runs the built command as an integrator does, in
// another process: the client posts an encrypted and a cleartext
// connection creation, and SIGTERM ends it with status 0.
func TestStandinBinary(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("sends SIGTERM")
	}
	certFile := filepath.Join(t.TempDir(), "standin.pem")
	s := startBinary(t, "standin", "--addr", "127.0.0.1:0", "--cert", certFile)

	base := s.next(t)
	client := certClient(t, certFile)
	pub, kid, err := fetchRSAKey(client, base+"/2.0/publickey")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := post(client, base+"/2.0/users/me/connections", connectionBody(t, pub, kid, "john.doe", "hunter2")); got != 200 || err != nil {
		t.Errorf("POST of encrypted credentials = %d, %v; want 200", got, err)
	}
	if got, err := post(client, base+"/2.0/users/me/connections", connectionBody(t, nil, "", "john.doe", "hunter2")); got != 400 || err != nil {
		t.Errorf("POST of credentials in cleartext = %d, %v; want 400", got, err)
	}
	for _, want := range []string{
		"GET /2.0/publickey 200",
		"POST /2.0/users/me/connections 200 encrypted: /login, /password; cleartext: none",
		"POST /2.0/users/me/connections 400 encrypted: none; cleartext: /login, /password",
	} {
		if got := s.next(t); got != want {
			t.Errorf("output line\n%s\nwant\n%s", got, want)
		}
	}
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Wait(); err != nil {
		t.Errorf("after SIGTERM: %v; want exit status 0 (stderr %q)", err, s.stderr.String())
	}
	if !strings.HasSuffix(s.stderr.String(), "e2ee: standin: stopped\n") {
		t.Errorf("stderr = %q; want it to end with the stop", s.stderr.String())
	}
}

// binaryRun is the built command, running in another process.
type binaryRun struct {
	cmd    *exec.Cmd
	lines  chan string // its standard output, a line at a time; closed at its end
	stderr *syncBuffer
}

// startBinary builds the command and starts it with args; it is killed when
// the test ends, if it still runs.
func startBinary(t *testing.T, args ...string) *binaryRun {
	t.Helper()
	s := &binaryRun{cmd: exec.Command(buildCLI(t), args...), lines: make(chan string, 16), stderr: &syncBuffer{}}
	stdout, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	s.cmd.Stderr = s.stderr
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.cmd.Process.Kill() })
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			s.lines <- sc.Text()
		}
		close(s.lines)
	}()
	return s
}

// next returns the next line of its output, "" when there is none.
func (s *binaryRun) next(t *testing.T) string {
	t.Helper()
	select {
	case line := <-s.lines:
		return line
	case <-time.After(10 * time.Second):
		t.Fatalf("no output line in 10 s; stderr %q", s.stderr.String())
		return ""
	}
}
