// Command e2ee encrypts, checks and inspects end-to-end encrypted request
// bodies from the command line, and serves a stand-in for the API that apps
// in any language can test against.
//
// Usage:
//
//	e2ee encrypt (--key URL|FILE | --powens DOMAIN) (--field PATTERN ... | --request NAME) [BODY]
//	e2ee check (--field PATTERN ... | --request NAME) [BODY]
//	e2ee key (URL|FILE | --powens DOMAIN)
//	e2ee standin [--addr HOST:PORT] [--http | --cert FILE] [--show-values]
//	e2ee version
//
// encrypt prints the body with every designated string replaced by its JWE.
// check exits with status 1, naming the fields still in cleartext, when a
// designated value is not a JWE. Both read the body from the file BODY, or
// from standard input without one (or with BODY "-"); a body in both is a
// usage error, and so is none (standard input a terminal or empty). key
// prints the key's kid, modulus size, RFC 7638 thumbprint and whether it is
// eligible, with the thumbprint in the form to paste into
// e2ee.FetcherConfig.Thumbprints to pin the key, and exits with status 1
// when it is not eligible. version prints the module version the command
// was built from. Flags and arguments may come in any order; after "--",
// everything is an argument.
//
// standin serves the stand-in for the API of package e2eetest, on loopback,
// for clients that are not Go tests: web pages, mobile apps in emulators,
// programs in any language (see docs/standin.md). It serves the public key
// at /2.0/publickey, decrypts what it receives, and refuses with 400 a
// credential request with a credential in cleartext, as the API does. It
// listens on --addr (default 127.0.0.1:8443; port 0 picks a free one), which
// must be loopback (127.0.0.0/8, ::1, localhost) unless
// --listen-beyond-loopback says otherwise. It serves HTTPS with a
// self-signed certificate for 127.0.0.1, ::1 and localhost, new at each
// start, written PEM to --cert (default: a new file in the temporary
// directory, removed on exit), or plain HTTP with --http. Its first line on
// standard output is the base URL, such as https://127.0.0.1:8443; then
// comes one line per request, written when it is answered: method, path
// (without the query) and status, and for a request with credential fields
// the JSON Pointers of those that arrived encrypted and those in cleartext:
//
//	POST /2.0/users/me/connections 200 encrypted: /login, /password; cleartext: none
//
// With --show-values, each field's value follows its pointer, decrypted,
// marked as a test value: /password="hunter2" (test value). Requests are
// served concurrently, each line with its own request's record. It runs
// until SIGINT (Ctrl-C) or SIGTERM, then exits with status 0; it does not
// read standard input, so it runs in the background too. Its private keys
// are public test keys: send it test credentials only.
//
// A key is a URL (https, or http on loopback; its scheme in any letter case,
// white space around it ignored) serving a JWK or JWK Set, or a file holding
// one, or a PEM public key or certificate (its kid is then --kid, or the
// key's thumbprint). No message shows a URL's user information or query, nor
// a key file's name. --powens DOMAIN stands for the key URL of
// that Powens domain; --request NAME for the field patterns of one of its
// requests: connection-create, connection-update, transfer-update,
// recipient-update, payment-validation; a body for one of those must be a
// JSON object, as the API's bodies are.
//
// Only the result goes to standard output; messages go to standard error and
// never carry a value of the body. The exit status is 0 on success, 1 on
// failure and 2 on a usage error.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode"

	"github.com/credseal/e2ee"
	"github.com/credseal/e2ee/internal/redact"
	"github.com/credseal/e2ee/powens"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// usageError is an error that calls for the usage text and exit status 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// usagef returns a usageError with the message "e2ee: " and format.
func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf("e2ee: "+format, args...)}
}

// errHelp marks a request for the usage text: it goes to standard output,
// with exit status 0.
var errHelp = errors.New("help")

// usage is the usage text: the commands, then every flag.
var usage = sync.OnceValue(func() string {
	var b strings.Builder
	b.WriteString(`usage:
  e2ee encrypt (--key URL|FILE | --powens DOMAIN) (--field PATTERN ... | --request NAME) [BODY]
  e2ee check (--field PATTERN ... | --request NAME) [BODY]
  e2ee key (URL|FILE | --powens DOMAIN)
  e2ee standin [--addr HOST:PORT] [--http | --cert FILE] [--show-values]
  e2ee version

encrypt and check read the body from the file BODY, or from standard input.
standin serves a stand-in for the API, with public test keys, until SIGINT
or SIGTERM: the base URL, then one line per request, on standard output.

flags:
`)
	fs := newOptions("").fs
	fs.SetOutput(&b)
	fs.PrintDefaults()
	b.WriteString("\nstandin flags:\n")
	fs = newStandinOptions().fs
	fs.SetOutput(&b)
	fs.PrintDefaults()
	return b.String()
})

// run executes the command line args and returns the exit status.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintf(stderr, "e2ee: no command\n%s", usage())
		return 2
	}
	var err error
	switch args[0] {
	case "encrypt":
		err = encrypt(ctx, args[1:], stdin, stdout)
	case "check":
		err = check(args[1:], stdin, stderr)
	case "key":
		err = inspectKey(ctx, args[1:], stdout)
	case "standin":
		err = standin(ctx, args[1:], stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "e2ee", version())
	case "help", "-h", "-help", "--help":
		err = errHelp
	default:
		if _, ok := keyURL(args[0]); ok {
			err = usagef("unknown command %s: a key URL goes after \"e2ee key\" or --key", redact.Quote(redact.RawURL(args[0])))
			break
		}
		err = usagef("unknown command %q", args[0])
	}
	// Every message starts with "e2ee: " already: the library's, and those
	// this command makes.
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errHelp):
		fmt.Fprint(stdout, usage())
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "%v\n%s", err, usage())
		return 2
	default:
		fmt.Fprintln(stderr, err)
		return 1
	}
}

// patterns collects repeated --field flags.
type patterns []string

func (p *patterns) String() string     { return strings.Join(*p, " ") }
func (p *patterns) Set(v string) error { *p = append(*p, v); return nil }

// headers collects repeated --header "Name: value" flags. A malformed one is
// remembered rather than refused in Set, since the flag package would quote
// its value, a credential perhaps, in its error.
type headers struct {
	h   http.Header
	bad int // malformed --header flags seen
}

func (h *headers) String() string { return "" }
func (h *headers) Set(v string) error {
	name, value, ok := strings.Cut(v, ":")
	if !ok || strings.TrimSpace(name) == "" {
		h.bad++
		return nil
	}
	h.h.Add(strings.TrimSpace(name), strings.TrimSpace(value))
	return nil
}

// options are the flags the commands share.
type options struct {
	fs      *flag.FlagSet
	args    []string // the arguments that are not flags, wherever they came
	fields  patterns
	request string
	key     string
	kid     string
	domain  string
	header  headers
	timeout time.Duration
}

func newOptions(name string) *options {
	o := &options{fs: flag.NewFlagSet(name, flag.ContinueOnError), header: headers{h: http.Header{}}}
	o.fs.SetOutput(io.Discard) // errors are reported by run
	o.fs.Var(&o.fields, "field", "a field `PATTERN`: a JSON Pointer whose segments may be *, or ! and a pointer to exclude; repeatable")
	o.fs.StringVar(&o.request, "request", "", "the fields of a Powens request `NAME`: "+requestNames())
	o.fs.StringVar(&o.key, "key", "", "the key: a `URL` (https, or http on loopback) or a FILE (JWK, JWK Set or PEM)")
	o.fs.StringVar(&o.kid, "kid", "", "the `KID` of a PEM key (default: its RFC 7638 thumbprint)")
	o.fs.StringVar(&o.domain, "powens", "", "a Powens `DOMAIN`, for its key URL")
	o.fs.Var(&o.header, "header", "a `HEADER` (\"Name: value\") sent with the key request; repeatable")
	o.fs.DurationVar(&o.timeout, "timeout", 10*time.Second, "bound on fetching the key")
	return o
}

// parse parses args, flags and arguments in any order: the flag package
// stops at the first argument, so parsing goes on after each. After "--",
// everything is an argument.
func (o *options) parse(args []string) error {
	for {
		err := o.fs.Parse(args)
		switch {
		case errors.Is(err, flag.ErrHelp):
			return errHelp
		case err != nil:
			return usagef("%v", err)
		}
		rest := o.fs.Args()
		if len(rest) == 0 {
			break
		}
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			o.args = append(o.args, rest...)
			break
		}
		o.args = append(o.args, rest[0])
		args = rest[1:]
	}
	if o.header.bad > 0 {
		return usagef(`--header wants "Name: value"`)
	}
	return nil
}

// payload returns the Payload of --field or --request, encrypting with enc.
// A Powens request's bodies are objects all the way to their fields.
func (o *options) payload(enc *e2ee.Encryptor) (*e2ee.Payload, error) {
	fields, err := o.patterns()
	if err != nil {
		return nil, err
	}
	p, err := e2ee.NewPayload(enc, fields...)
	if err != nil {
		return nil, usageError{err} // a pattern NewPayload refuses
	}
	if o.request != "" {
		p = p.ObjectsOnly()
	}
	return p, nil
}

// patterns returns the field patterns of --field or --request.
func (o *options) patterns() ([]string, error) {
	switch {
	case o.request != "" && len(o.fields) > 0:
		return nil, usagef("give --field or --request, not both")
	case o.request != "":
		f := powens.Fields(powens.Request(o.request))
		if f == nil {
			return nil, usagef("unknown request %q (want one of %s)", o.request, requestNames())
		}
		return f, nil
	case len(o.fields) == 0:
		return nil, usagef("no --field or --request")
	}
	return o.fields, nil
}

func requestNames() string {
	var names []string
	for _, r := range powens.Requests() {
		names = append(names, string(r))
	}
	return strings.Join(names, ", ")
}

// keyLocation returns where the key is: --key, the argument (args, for e2ee
// key), or the --powens domain's key URL.
func (o *options) keyLocation(args []string) (string, error) {
	loc := o.key
	if len(args) > 0 {
		if loc != "" || len(args) > 1 {
			return "", usagef("more than one key given")
		}
		loc = args[0]
	}
	if o.domain != "" {
		if loc != "" {
			return "", usagef("give a key or --powens, not both")
		}
		if _, ok := keyURL(o.domain); ok || strings.ContainsAny(o.domain, "@?#") {
			// Not echoed: it may carry a token.
			return "", usagef(`--powens wants the domain name alone, e.g. "acme", not a URL (give a key URL as --key URL)`)
		}
		u, err := powens.KeyURL(o.domain)
		if err != nil {
			return "", fmt.Errorf("e2ee: --powens: %w", err)
		}
		return u, nil
	}
	switch {
	case loc == "" && o.fs.Name() == "key":
		return "", usagef("no key: give a URL, a FILE or --powens DOMAIN")
	case loc == "":
		return "", usagef("no key: give --key URL|FILE or --powens DOMAIN")
	}
	return loc, nil
}

// loadKey fetches or reads the key at loc: a URL (see keyURL), else a file.
// Its messages never show loc: the URL's own are the e2ee package's, which
// leave out its user information and query; a file's name is left out too,
// since it may be a URL that keyURL did not take for one.
func (o *options) loadKey(ctx context.Context, loc string) (*e2ee.Key, error) {
	if u, ok := keyURL(loc); ok {
		f, err := e2ee.NewKeyFetcher(u, &e2ee.FetcherConfig{Header: o.header.h, Timeout: o.timeout})
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return f.Key(ctx)
	}
	data, err := readAll(loc, nil)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // without the name
		}
		return nil, fmt.Errorf("e2ee: reading the key file: %w", err)
	}
	if strings.Contains(string(data), "-----BEGIN ") {
		return e2ee.ParsePEM(data, o.kid) // with no --kid, the thumbprint
	}
	return e2ee.ParseKey(data)
}

// keyURL reports whether loc is a URL rather than a file name, whatever the
// letter case of its scheme and the white space around it, and returns it
// without that white space. A URL is a scheme (a letter, then letters,
// digits, "+", "-" or "."; two characters at least, so that C:\key.json is
// a file) and "://", or http or https and ":" (HTTPS:host/key, which
// NewKeyFetcher refuses without echoing).
func keyURL(loc string) (string, bool) {
	s := strings.TrimSpace(loc)
	scheme, rest, ok := strings.Cut(s, ":")
	if !ok || len(scheme) < 2 || !isScheme(scheme) {
		return "", false
	}
	if strings.HasPrefix(rest, "//") || strings.EqualFold(scheme, "http") || strings.EqualFold(scheme, "https") {
		return s, true
	}
	return "", false
}

// isScheme reports whether s has the syntax of a URL scheme (RFC 3986).
func isScheme(s string) bool {
	for i, c := range s {
		letter := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
		if !letter && (i == 0 || !('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.')) {
			return false
		}
	}
	return s != ""
}

func encrypt(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	o := newOptions("encrypt")
	if err := o.parse(args); err != nil {
		return err
	}
	if _, err := o.patterns(); err != nil {
		return err
	}
	if o.key == "" && o.domain == "" && len(o.args) > 0 {
		return usagef("no key: give --key URL|FILE or --powens DOMAIN (an argument is the BODY file, not the key)")
	}
	loc, err := o.keyLocation(nil)
	if err != nil {
		return err
	}
	name, err := o.bodyFile(stdin)
	if err != nil {
		return err
	}
	key, err := o.loadKey(ctx, loc)
	if err != nil {
		return err
	}
	p, err := o.payload(e2ee.NewEncryptor(e2ee.StaticKey(key)))
	if err != nil {
		return err
	}
	body, err := readBody(name, stdin)
	if err != nil {
		return err
	}
	out, err := p.Encrypt(ctx, body)
	if err != nil {
		return err
	}
	if _, err := stdout.Write(out); err != nil {
		return fmt.Errorf("e2ee: writing the body: %w", err)
	}
	return nil
}

func check(args []string, stdin io.Reader, stderr io.Writer) error {
	o := newOptions("check")
	if err := o.parse(args); err != nil {
		return err
	}
	if o.key != "" || o.domain != "" {
		return usagef("check needs no key")
	}
	p, err := o.payload(nil)
	if err != nil {
		return err
	}
	name, err := o.bodyFile(stdin)
	if err != nil {
		return err
	}
	body, err := readBody(name, stdin)
	if err != nil {
		return err
	}
	if err := p.Check(body); err != nil {
		return err
	}
	fmt.Fprintln(stderr, "e2ee: check: every designated value is encrypted")
	return nil
}

func inspectKey(ctx context.Context, args []string, stdout io.Writer) error {
	o := newOptions("key")
	if err := o.parse(args); err != nil {
		return err
	}
	loc, err := o.keyLocation(o.args)
	if err != nil {
		return err
	}
	key, err := o.loadKey(ctx, loc)
	var unsuitable *e2ee.UnsuitableKeyError
	if errors.As(err, &unsuitable) {
		fmt.Fprintf(stdout, "eligible:   no: %s\n", unsuitable.Reason)
		return errors.New("e2ee: key: the key is not eligible")
	}
	if err != nil {
		return err
	}
	tp, err := key.Thumbprint()
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "kid:        %s\n", printable(key.ID))
	fmt.Fprintf(stdout, "modulus:    %d bits\n", key.PublicKey.N.BitLen())
	fmt.Fprintf(stdout, "exponent:   %d\n", key.PublicKey.E)
	fmt.Fprintf(stdout, "thumbprint: %s (RFC 7638, SHA-256)\n", tp)
	if tp == key.ID {
		fmt.Fprintf(stdout, "            the kid is the thumbprint\n")
	}
	fmt.Fprintf(stdout, "eligible:   yes: JWEs use RSA-OAEP-256 and A256GCM\n")
	fmt.Fprintf(stdout, "pin:        e2ee.FetcherConfig{Thumbprints: []string{%q}}\n", tp)
	return nil
}

// printable returns s as it is when every rune of it prints, and quoted with
// Go escapes otherwise, so that a kid cannot move the cursor or hide text.
func printable(s string) string {
	if strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		return strconv.Quote(s)
	}
	return s
}

// version returns the module version the command was built from, such as
// v1.2.0, or (devel), and the Go release that built it.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "(unknown)"
	}
	return fmt.Sprintf("%s (%s)", cmp.Or(bi.Main.Version, "(devel)"), bi.GoVersion)
}
