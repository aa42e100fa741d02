package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/credseal/e2ee/e2eetest"
)

// defaultAddr is the address the stand-in listens on without --addr.
const defaultAddr = "127.0.0.1:8443"

// standinOptions are the flags of e2ee standin.
type standinOptions struct {
	fs         *flag.FlagSet
	addr       string
	plain      bool   // --http
	cert       string // --cert: where the certificate goes; "": a new file in the temporary directory
	showValues bool
	beyond     bool // --listen-beyond-loopback

	// Set by parseStandin, from addr.
	host     string // addr's host
	loopback bool   // host names loopback only
}

func newStandinOptions() *standinOptions {
	o := &standinOptions{fs: flag.NewFlagSet("standin", flag.ContinueOnError)}
	o.fs.SetOutput(io.Discard) // errors are reported by run
	o.fs.StringVar(&o.addr, "addr", defaultAddr, "the `HOST:PORT` to listen on, loopback only: 127.0.0.0/8, ::1 or localhost (port 0: a free port)")
	o.fs.BoolVar(&o.plain, "http", false, "serve plain HTTP (loopback only) instead of HTTPS")
	o.fs.StringVar(&o.cert, "cert", "", "write the HTTPS certificate, PEM, to `FILE` (default: a new file in the temporary directory, removed on exit)")
	o.fs.BoolVar(&o.showValues, "show-values", false, "print the values of credential fields, decrypted, marked as test values")
	o.fs.BoolVar(&o.beyond, "listen-beyond-loopback", false, "listen on an address that is not loopback, where others may reach the stand-in's public test keys")
	return o
}

// standin serves the e2eetest stand-in for the API until ctx is done: the
// base URL, then one line per request, go to stdout; notes to stderr.
func standin(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseStandin(args)
	if err != nil {
		return err
	}
	ln, addr, err := o.listen()
	if err != nil {
		return err
	}
	defer ln.Close()
	lines := &lockedWriter{w: stdout}
	notes := &lockedWriter{w: stderr}
	api := e2eetest.NewServer()
	defer api.Close()
	server := newStandinServer(api, lines, notes, o.showValues)
	if !o.plain {
		removeCert, err := o.setUpTLS(server, addr.IP, notes)
		if err != nil {
			return err
		}
		defer removeCert()
	}
	o.announce(notes, lines, addr, api.Key().ID)
	return serveUntil(ctx, server, ln, o.plain, notes)
}

// parseStandin parses the arguments of e2ee standin and checks them: flags
// only, --cert for HTTPS only, --addr a loopback address unless
// --listen-beyond-loopback, and --http on loopback only.
func parseStandin(args []string) (*standinOptions, error) {
	o := newStandinOptions()
	if err := o.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, errHelp
		}
		return nil, usagef("standin: %v", err)
	}
	if o.fs.NArg() > 0 {
		return nil, usagef("standin takes no arguments, only flags")
	}
	if o.plain && o.cert != "" {
		return nil, usagef("standin: --cert is for HTTPS: with --http there is no certificate")
	}
	host, _, err := net.SplitHostPort(o.addr)
	if err != nil {
		return nil, usagef("standin: --addr %q: want HOST:PORT, such as %s or 127.0.0.1:0", o.addr, defaultAddr)
	}
	o.host, o.loopback = host, isLoopbackHost(host)
	switch {
	case !o.loopback && !o.beyond:
		return nil, usagef("standin: --addr %q is not a loopback address (127.0.0.0/8, ::1, localhost): "+
			"the stand-in's private keys are public test keys; give --listen-beyond-loopback to listen there all the same", o.addr)
	case !o.loopback && o.plain:
		return nil, usagef("standin: --http serves on loopback only: %q is not a loopback address", o.addr)
	}
	return o, nil
}

// listen listens on --addr and returns the listener and the address it
// listens on. A loopback host that resolved to another address (localhost,
// say) is an error.
func (o *standinOptions) listen() (net.Listener, *net.TCPAddr, error) {
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, nil, fmt.Errorf("e2ee: standin: %w (--addr 127.0.0.1:0 picks a free port)", err)
		}
		return nil, nil, fmt.Errorf("e2ee: standin: %w", err)
	}
	addr := ln.Addr().(*net.TCPAddr)
	if o.loopback && !addr.IP.IsLoopback() {
		ln.Close()
		return nil, nil, fmt.Errorf("e2ee: standin: %s listens on %s, which is not a loopback address", o.host, addr.IP)
	}
	return ln, addr, nil
}

// newStandinServer returns the HTTP server of the stand-in api: it writes a
// line per request to lines, and its own errors to notes.
func newStandinServer(api *e2eetest.Server, lines, notes io.Writer, showValues bool) *http.Server {
	return &http.Server{
		Handler:           &requestLog{api: api, out: lines, showValues: showValues},
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		IdleTimeout:       time.Minute,
		ErrorLog:          log.New(notes, "e2ee: standin: ", 0), // TLS handshakes that fail, for one
	}
}

// setUpTLS gives server a new self-signed certificate for ip, the address
// listened on, writes it to --cert or a new file in the temporary directory,
// and says on notes where it is. The function returned removes the file
// when it is new.
func (o *standinOptions) setUpTLS(server *http.Server, ip net.IP, notes io.Writer) (func(), error) {
	cert, err := newCertificate(ip)
	if err != nil {
		return nil, err
	}
	path, removeCert, err := writeCertificate(o.cert, cert.Certificate[0])
	if err != nil {
		return nil, err
	}
	server.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	fmt.Fprintf(notes, "e2ee: standin: the certificate, new at each start, is in %s: trust it in the client (curl --cacert %s)\n", path, path)
	return removeCert, nil
}

// announce writes the notes of a start to notes (a warning beyond loopback,
// that values are printed, where the key is, of kid kid), then the base URL
// of the stand-in listening on addr to lines, as their first line.
func (o *standinOptions) announce(notes, lines io.Writer, addr *net.TCPAddr, kid string) {
	scheme := "https"
	if o.plain {
		scheme = "http"
	}
	base := scheme + "://" + net.JoinHostPort(urlHost(o.host, addr.IP), strconv.Itoa(addr.Port))
	if !o.loopback {
		fmt.Fprintf(notes, "e2ee: standin: WARNING: listening beyond loopback, on %s: whoever reaches it reaches a server "+
			"whose private keys are public test keys; send it test credentials only\n", net.JoinHostPort(o.host, strconv.Itoa(addr.Port)))
	}
	if o.showValues {
		fmt.Fprintln(notes, "e2ee: standin: printing the values of credential fields: they are test values, never real credentials")
	}
	fmt.Fprintf(notes, "e2ee: standin: the key is at %s/2.0/publickey (kid %s); stop with Ctrl-C (SIGINT) or SIGTERM\n", base, kid)
	fmt.Fprintln(lines, base)
}

// serveUntil serves ln with server, over TLS unless plain, until ctx is
// done, then shuts server down, giving the requests in flight 5 s. It
// returns an error when serving stops by itself.
func serveUntil(ctx context.Context, server *http.Server, ln net.Listener, plain bool, notes io.Writer) error {
	served := make(chan error, 1)
	go func() {
		if plain {
			served <- server.Serve(ln)
		} else {
			served <- server.ServeTLS(ln, "", "") // the certificate of TLSConfig
		}
	}()
	select {
	case err := <-served:
		return fmt.Errorf("e2ee: standin: %w", err)
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := server.Shutdown(shutdown); err != nil {
		server.Close() // requests still in flight after 5 s
	}
	fmt.Fprintln(notes, "e2ee: standin: stopped")
	return nil
}

// isLoopbackHost reports whether host, from an address to listen on, names
// loopback only: localhost, or an IP address of 127.0.0.0/8 or ::1.
func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// urlHost returns the host of the base URL: the host given, when it is a
// name, and otherwise the address listened on (127.0.0.1 for all of them).
func urlHost(host string, ip net.IP) string {
	switch {
	case host != "" && net.ParseIP(host) == nil:
		return host
	case ip.IsUnspecified():
		return "127.0.0.1"
	}
	return ip.String()
}

// newCertificate returns a new self-signed ECDSA P-256 certificate for
// 127.0.0.1, ::1, localhost and ip, the address listened on.
func newCertificate(ip net.IP) (tls.Certificate, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("e2ee: standin: generating the TLS key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("e2ee: standin: generating the TLS key: %w", err)
	}
	ips := []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	if !ip.IsUnspecified() && !slices.ContainsFunc(ips, ip.Equal) {
		ips = append(ips, ip)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"e2ee standin"}, CommonName: "e2ee standin"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(30 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true, // its own root, for clients that trust it as one
		DNSNames:              []string{"localhost"},
		IPAddresses:           ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("e2ee: standin: creating the TLS certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv}, nil
}

// writeCertificate writes the certificate der, PEM, to the file path, or to a
// new file in the temporary directory when path is empty. It returns the
// file's path and a function that removes the file when it was new.
func writeCertificate(path string, der []byte) (string, func(), error) {
	data := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if path != "" {
		if err := os.WriteFile(path, data, 0o644); err != nil {
			return "", nil, fmt.Errorf("e2ee: standin: writing the certificate: %w", err)
		}
		if abs, err := filepath.Abs(path); err == nil {
			path = abs // for clients started elsewhere
		}
		return path, func() {}, nil
	}
	f, err := os.CreateTemp("", "e2ee-standin-*.pem")
	if err != nil {
		return "", nil, fmt.Errorf("e2ee: standin: writing the certificate: %w", err)
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", nil, fmt.Errorf("e2ee: standin: writing the certificate: %w", err)
	}
	return f.Name(), func() { os.Remove(f.Name()) }, nil
}

// lockedWriter writes each call's bytes whole, whatever the goroutine.
type lockedWriter struct {
	mu sync.Mutex // guards w
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// requestLog serves the stand-in and writes one line per request to out:
// method, path and status and, for a request with credential fields, which
// arrived encrypted and which in cleartext. Concurrent requests are served
// at once; each line is written whole, with the record of its own request.
type requestLog struct {
	api        *e2eetest.Server
	out        io.Writer // a lockedWriter
	showValues bool      // print the fields' values too
}

func (l *requestLog) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	sw := &statusWriter{ResponseWriter: w}
	rec, ok := l.api.ServeRequest(sw, r)
	status := sw.status
	if status == 0 {
		status = http.StatusOK
	}
	// The path as sent, percent-encoded, so that it cannot move the
	// cursor; the query is left out: it could carry a credential.
	line := fmt.Sprintf("%s %s %d", r.Method, r.URL.EscapedPath(), status)
	if ok {
		line += l.fields(rec)
		if status >= 400 && rec.Err != nil && len(rec.Cleartext) == 0 {
			// Why, when the fields do not say: a form, a JWE that does
			// not decrypt. The message carries no value.
			line += " (" + printable(rec.Err.Error()) + ")"
		}
	}
	fmt.Fprintln(l.out, line)
}

// fields returns what the line of rec says of its credential fields: those
// that arrived encrypted (JWEs) and those in cleartext, by JSON Pointer, and
// their values with --show-values; "" for a request with neither.
func (l *requestLog) fields(rec e2eetest.Request) string {
	encrypted := slices.Sorted(func(yield func(string) bool) {
		for ptr := range rec.KeyIDs {
			if !yield(ptr) {
				return
			}
		}
	})
	if len(encrypted) == 0 && len(rec.Cleartext) == 0 {
		return ""
	}
	var body any // the body, for the values in cleartext
	if l.showValues && len(rec.Cleartext) > 0 {
		d := json.NewDecoder(strings.NewReader(string(rec.Body)))
		d.UseNumber()
		if d.Decode(&body) != nil {
			body = nil
		}
	}
	var b strings.Builder
	b.WriteString(" encrypted: ")
	list(&b, encrypted, func(ptr string) string {
		plain, ok := rec.Decrypted[ptr]
		switch {
		case !ok:
			return " (did not decrypt)"
		case l.showValues:
			return "=" + strconv.Quote(plain) + " (test value)"
		}
		return ""
	})
	b.WriteString("; cleartext: ")
	list(&b, rec.Cleartext, func(ptr string) string {
		if !l.showValues {
			return ""
		}
		if v, ok := lookup(body, ptr); ok {
			return "=" + jsonValue(v) + " (test value)"
		}
		return ""
	})
	return b.String()
}

// list writes ptrs to b, each followed by what more says of it, separated by
// commas, or "none".
func list(b *strings.Builder, ptrs []string, more func(string) string) {
	if len(ptrs) == 0 {
		b.WriteString("none")
		return
	}
	for i, ptr := range ptrs {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(printable(ptr))
		b.WriteString(more(ptr))
	}
}

// lookup returns the value at the JSON Pointer ptr of v, a decoded JSON
// value. For a member named twice, the decoder kept the last, as
// e2eetest.Request.Decrypted does.
func lookup(v any, ptr string) (any, bool) {
	if ptr == "" {
		return v, true
	}
	if !strings.HasPrefix(ptr, "/") {
		return nil, false
	}
	for _, seg := range strings.Split(ptr[1:], "/") {
		seg = strings.ReplaceAll(strings.ReplaceAll(seg, "~1", "/"), "~0", "~")
		switch c := v.(type) {
		case map[string]any:
			var ok bool
			if v, ok = c[seg]; !ok {
				return nil, false
			}
		case []any:
			i, err := strconv.Atoi(seg)
			if err != nil || i < 0 || i >= len(c) {
				return nil, false
			}
			v = c[i]
		default:
			return nil, false
		}
	}
	return v, true
}

// jsonValue returns v as a line shows it: a string quoted with Go escapes,
// anything else as JSON, quoted too when it would not print as it is.
func jsonValue(v any) string {
	if s, ok := v.(string); ok {
		return strconv.Quote(s)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "(a value)"
	}
	return printable(string(b))
}

// statusWriter is an http.ResponseWriter that remembers the status written.
type statusWriter struct {
	http.ResponseWriter
	status int // 0 until the header is written
}

func (w *statusWriter) WriteHeader(status int) {
	if w.status == 0 && status >= 200 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap returns the ResponseWriter wrapped, for http.ResponseController.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
