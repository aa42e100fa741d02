package e2ee_test

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/credseal/e2ee"
	"github.com/credseal/e2ee/e2eetest"
	"github.com/credseal/e2ee/internal/fixture"
	"github.com/credseal/e2ee/powens"
)

// secret is the credential of every request below: it must never leave in
// cleartext, nor appear in an error or a log line.
const secret = "canary-S3cr3t-4f1d"

// outcome is what a mistake leads to.
type outcome int

const (
	// configError: setting up returns an error, and whatever was set up
	// anyway refuses the request.
	configError outcome = iota
	// refused: the request fails with ErrNotSent and nothing reaches the API.
	refused
	// encrypted: the request reaches the API with the credential encrypted.
	encrypted
	// passed: the request, which carries no credential, reaches the API as
	// it was.
	passed
)

func (o outcome) String() string {
	return [...]string{"a configuration error", "a refusal", "an encrypted request", "sent as it was"}[o]
}

// mistake is an integrator's mistake: how a client is set up, what it sends,
// and what must come of it.
type mistake struct {
	name string
	// setUp returns the client the integrator would use, and the
	// configuration error it was given (which the integrator may ignore).
	setUp  func(t *testing.T, api *e2eetest.Server, log *slog.Logger) (*http.Client, error)
	method string
	url    string
	body   string
	header http.Header
	// ctx, when set, gives the request's context.
	ctx    func(context.Context) context.Context
	want   outcome
	reason string // in the error, when there is one
	// before is how many requests reach the API before a refusal: those
	// of a redirect chain before the hop refused.
	before int
}

// newClient is powens.NewClient on the test API, logging refusals and key
// fetches to log.
func newClient(domain string) func(*testing.T, *e2eetest.Server, *slog.Logger) (*http.Client, error) {
	return withOptions(domain, powens.Options{})
}

// withOptions is powens.NewClient on the test API with opts, completed with
// the test API's client and log, which the client's refusals and its key
// fetcher's events go to.
func withOptions(domain string, opts powens.Options) func(*testing.T, *e2eetest.Server, *slog.Logger) (*http.Client, error) {
	return func(_ *testing.T, api *e2eetest.Server, log *slog.Logger) (*http.Client, error) {
		opts.HTTPClient = api.Client()
		opts.Logger = log
		return powens.NewClient(domain, &opts)
	}
}

// redirecting is powens.NewClient on a test API that answers a connection
// creation with a 307 to location.
func redirecting(location string) func(*testing.T, *e2eetest.Server, *slog.Logger) (*http.Client, error) {
	return func(t *testing.T, api *e2eetest.Server, log *slog.Logger) (*http.Client, error) {
		api.Handle("POST /2.0/users/{user}/connections", http.RedirectHandler(location, http.StatusTemporaryRedirect))
		return newClient("acme")(t, api, log)
	}
}

// withRoutes is a client whose Transport has the given routes, made from
// the test API's key; the error is the Transport's Validate.
func withRoutes(routes func(enc *e2ee.Encryptor) []e2ee.Route) func(*testing.T, *e2eetest.Server, *slog.Logger) (*http.Client, error) {
	return func(t *testing.T, api *e2eetest.Server, _ *slog.Logger) (*http.Client, error) {
		tr := &e2ee.Transport{Base: api.Transport(), Routes: routes(e2ee.NewEncryptor(e2ee.StaticKey(api.Key())))}
		return &http.Client{Transport: tr}, tr.Validate()
	}
}

// pattern is a client with one route of the given pattern, encrypting every
// member but id_connector.
func pattern(p string) func(*testing.T, *e2eetest.Server, *slog.Logger) (*http.Client, error) {
	return withRoutes(func(enc *e2ee.Encryptor) []e2ee.Route {
		payload, err := e2ee.NewPayload(enc, "/*", "!/id_connector")
		if err != nil {
			panic(err)
		}
		return []e2ee.Route{{Pattern: p, Payload: payload}}
	})
}

// verifyOnly is a relay's client: a VerifyOnly route for the payment
// validation's fields, checking JWEs against the test API's key.
func verifyOnly(t *testing.T, api *e2eetest.Server, log *slog.Logger) (*http.Client, error) {
	return withRoutes(func(enc *e2ee.Encryptor) []e2ee.Route {
		payload, err := e2ee.NewPayload(enc, "/fields/*")
		if err != nil {
			panic(err)
		}
		routes, err := powens.VerifyRoutes("acme")
		if err != nil {
			panic(err)
		}
		return append(routes, e2ee.Route{Pattern: "acme.biapi.pro/2.0/relay/{id}", Payload: payload, VerifyOnly: true})
	})(t, api, log)
}

const (
	connections = "https://acme.biapi.pro/2.0/users/me/connections"
	cleartext   = `{"id_connector": 40, "login": "john.doe", "password": "` + secret + `"}`
	update      = `{"login": "john.doe", "password": "` + secret + `", "resume": true}`
)

// mistakes are the configuration mistakes that, before the SDK refused
// them, each sent a credential in cleartext with no error; and the guards
// added with them.
func mistakes() []mistake {
	ignoringErrors := func(domain string) func(*testing.T, *e2eetest.Server, *slog.Logger) (*http.Client, error) {
		return func(t *testing.T, api *e2eetest.Server, _ *slog.Logger) (*http.Client, error) {
			routes, err := powens.Routes(domain, e2ee.NewEncryptor(e2ee.StaticKey(api.Key())))
			return &http.Client{Transport: &e2ee.Transport{Base: api.Transport(), Routes: routes}}, err
		}
	}
	values := func(n int) string {
		var b strings.Builder
		b.WriteString(`{"id_connector": 40`)
		for i := range n {
			fmt.Fprintf(&b, `, "field%d": "%s"`, i, secret)
		}
		return b.String() + "}"
	}
	gz := func() string {
		var b bytes.Buffer
		w := gzip.NewWriter(&b)
		w.Write([]byte(cleartext))
		w.Close()
		return b.String()
	}
	return []mistake{
		// 1. The API host given for the domain.
		{name: "API host as the domain", setUp: newClient("acme.biapi.pro"), url: connections, want: encrypted},
		{name: "API host in capitals as the domain", setUp: newClient("ACME.BIAPI.PRO"), url: connections, want: encrypted},
		{name: "API host for Routes, errors ignored", setUp: ignoringErrors("acme.biapi.pro"), url: connections, want: encrypted},
		{name: "URL as the domain", setUp: newClient("https://acme.biapi.pro"), url: connections, want: configError, reason: `pass the domain name alone, e.g. "acme"`},
		{name: "BaseURL over http", setUp: withOptions("acme", powens.Options{BaseURL: "http://egress.internal/powens"}), url: connections, want: configError, reason: "is http: want https"},
		{name: "host and port as the domain", setUp: newClient("acme.biapi.pro:443"), url: connections, want: configError, reason: "has a port"},
		{name: "another parent domain", setUp: newClient("acme.example.com"), url: connections, want: configError, reason: "directly under biapi.pro"},
		// 2. A client set up for one domain posting to another.
		{name: "another domain", setUp: newClient("acme"), url: "https://acme-sandbox.biapi.pro/2.0/users/me/connections", want: refused, reason: `POST "acme-sandbox.biapi.pro": the host is not that of route "acme.biapi.pro/users/{user}/connections"`},
		{name: "a second tenant", setUp: newClient("acme"), url: "https://other.biapi.pro/2.0/users/me/connections/7", want: refused, reason: "acme.biapi.pro/users/{user}/connections/{connection}"},
		{name: "another domain, Unicode spelling", setUp: newClient("acme"), url: "https://acme-sandbox。biapi.pro/2.0/payments/9", body: `{"fields": {"code": "` + secret + `"}}`, want: refused, reason: "payments"},
		{name: "another domain, no body", setUp: newClient("acme"), method: "GET", url: "https://acme-sandbox.biapi.pro/2.0/users/me/connections", body: "-", want: passed},
		{name: "another domain, an endpoint that is not encrypted", setUp: newClient("acme"), url: "https://acme-sandbox.biapi.pro/2.0/users/me/accounts/1", body: `{"name": "current account"}`, want: passed},
		// 3. An error ignored: a mistyped domain gives no routes.
		{name: "mistyped domain, errors ignored", setUp: ignoringErrors("acme_prod"), url: connections, want: configError, reason: "'_', which a DNS label cannot have"},
		{name: "no routes at all", setUp: withRoutes(func(*e2ee.Encryptor) []e2ee.Route { return nil }), url: connections, want: configError, reason: "has no routes"},
		// 4. Route patterns that cannot match as written.
		{name: "pattern without a leading slash", setUp: pattern("POST 2.0/users/{user}/connections"), url: connections, want: configError, reason: `"2.0" is not a host name`},
		{name: "pattern with a lower-case method", setUp: pattern("post /2.0/users/{user}/connections"), url: connections, want: configError, reason: "must be upper case"},
		{name: "pattern with an unknown method", setUp: pattern("SEND /2.0/users/{user}/connections"), url: connections, want: configError, reason: "unknown method"},
		{name: "pattern with a :name segment", setUp: pattern("POST /2.0/users/:user/connections"), url: connections, want: configError, reason: "{user}"},
		{name: "pattern with a * segment", setUp: pattern("POST /2.0/users/*/connections"), url: connections, want: configError, reason: "wildcard"},
		{name: "pattern host with a port", setUp: pattern("POST acme.biapi.pro:443/2.0/users/{user}/connections"), url: connections, want: configError, reason: "has a port"},
		{name: "pattern host with a trailing dot", setUp: pattern("POST acme.biapi.pro./2.0/users/{user}/connections"), url: connections, want: configError, reason: "ends with a dot"},
		{name: "pattern host in brackets", setUp: pattern("POST [::1]/2.0/users/{user}/connections"), url: connections, want: configError, reason: "brackets"},
		{name: "pattern host with non-ASCII letters", setUp: pattern("POST ａｃｍｅ.biapi.pro/2.0/users/{user}/connections"), url: connections, want: configError, reason: `"acme.biapi.pro"`},
		{name: "pattern host in capitals", setUp: pattern("POST ACME.biapi.pro/2.0/users/{user}/connections"), url: connections, want: configError, reason: "lowercase"},
		{name: "pattern with a query", setUp: pattern("POST /2.0/users/{user}/connections?x=1"), url: connections, want: configError, reason: "query"},
		// 5. Host spellings that net/http dials as the API's host.
		{name: "ideographic full stop in the host", setUp: newClient("acme"), url: "https://acme。biapi.pro/2.0/users/me/connections", want: encrypted},
		{name: "fullwidth letters in the host", setUp: newClient("acme"), url: "https://ａｃｍｅ.ｂｉａｐｉ.ｐｒｏ/2.0/users/me/connections", want: encrypted},
		{name: "percent-encoded full stop in the host", setUp: newClient("acme"), url: "https://acme%E3%80%82biapi.pro/2.0/users/me/connections", want: encrypted},
		{name: "host in capitals, port and trailing dot", setUp: newClient("acme"), url: "https://ACME.biapi.pro.:443/2.0/users/me/connections", want: encrypted},
		{name: "host that cannot be mapped", setUp: newClient("acme"), url: "https://xn--zzé.biapi.pro/2.0/users/me/connections", want: refused, reason: "the host is not that of route"},
		{name: "pattern without host, Unicode host", setUp: pattern("POST /2.0/users/{user}/connections"), url: "https://acme。biapi.pro/2.0/users/me/connections", want: encrypted},
		// 6. Upper- or mixed-case paths.
		{name: "path in capitals", setUp: newClient("acme"), url: "https://acme.biapi.pro/2.0/USERS/me/CONNECTIONS", want: encrypted},
		{name: "path in capitals, pattern in capitals", setUp: pattern("POST acme.biapi.pro/2.0/Users/{user}/Connections"), url: "https://acme.biapi.pro/2.0/users/ME/connections", want: encrypted},
		{name: "path in capitals through a relay", setUp: verifyOnly, url: "https://acme.biapi.pro/2.0/PAYMENTS/9", body: `{"fields": {"code": "` + secret + `"}}`, want: refused, reason: "cleartext: /fields/*"},
		// The bodies that cannot be encrypted in place.
		{name: "gzip body", setUp: newClient("acme"), url: connections, body: gz(), header: http.Header{"Content-Encoding": {"gzip"}}, want: refused, reason: "compressed bodies cannot be encrypted in place"},
		{name: "form body", setUp: newClient("acme"), url: connections, body: "login=john&password=" + secret, header: http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, want: refused, reason: `Content-Type is "application/x-www-form-urlencoded"`},
		{name: "JSON body labelled as text", setUp: newClient("acme"), url: connections, header: http.Header{"Content-Type": {"text/plain"}}, want: refused, reason: `"text/plain"`},
		{name: "JSON with a charset", setUp: newClient("acme"), url: connections, header: http.Header{"Content-Type": {"application/json; charset=utf-8"}}, want: encrypted},
		{name: "a +json media type", setUp: newClient("acme"), url: connections, header: http.Header{"Content-Type": {"application/vnd.api+json"}}, want: encrypted},
		// The bound on designated values.
		{name: "20,000 values", setUp: newClient("acme"), url: connections, body: values(20000), want: refused, reason: "more than 256"},
		{name: "200 values", setUp: newClient("acme"), url: connections, body: values(200), want: encrypted},
		// A credential pasted into a template becomes a member name.
		{name: "credential as a member name", setUp: newClient("acme"), url: connections, body: `{"id_connector": 40, "login\", \"password\": \"` + secret + `": 1}`, want: refused, reason: "/* is a number"},
		{name: "credential as a member name, control characters", setUp: newClient("acme"), url: connections, body: `{"id_connector": 40, "` + secret + `\u001b[2J\n": 1}`, want: refused, reason: "/* is a number"},
		// Every request shape fails closed (each row names its finding).
		// 1. A gateway with a path prefix: refused until declared.
		{name: "1 gateway with a path prefix", setUp: newClient("acme"), url: "https://egress.internal/powens/2.0/users/me/connections", want: refused, reason: `"egress.internal": the host is not that of route`},
		{name: "1 gateway, the message says how to declare it", setUp: newClient("acme"), url: "https://egress.internal/powens/2.0/payments/9", body: `{"fields": {"code": "` + secret + `"}}`, want: refused, reason: "if the host is a gateway to the API, name it in a route, as powens.Options.BaseURL does"},
		{name: "1 the API host in a proxy's path", setUp: newClient("acme"), url: "https://proxy.example/acme.biapi.pro/2.0/users/me/connections", want: refused, reason: `"proxy.example"`},
		{name: "1 gateway declared with BaseURL", setUp: withOptions("acme", powens.Options{BaseURL: "https://egress.internal/powens"}), url: "https://egress.internal/powens/2.0/users/me/connections", want: encrypted},
		{name: "1 gateway declared, the API host still encrypted", setUp: withOptions("acme", powens.Options{BaseURL: "https://egress.internal/powens/"}), url: connections, want: encrypted},
		{name: "1 relay whose upstream URL has a path", setUp: verifyOnly, url: "https://acme.biapi.pro/upstream/2.0/users/me/connections", want: refused, reason: "cleartext: /*, /*"},
		{name: "1 relay whose upstream URL has a path, payment", setUp: verifyOnly, url: "https://acme.biapi.pro/upstream/2.0/payments/9", body: `{"fields": {"code": "` + secret + `"}}`, want: refused, reason: "cleartext: /fields/*"},
		// 2. Other spellings on the API host.
		{name: "2 version 3.0", setUp: newClient("acme"), url: "https://acme.biapi.pro/3.0/users/me/connections", want: encrypted},
		{name: "2 version 2.1", setUp: newClient("acme"), url: "https://acme.biapi.pro/2.1/users/me/connections/42", body: update, want: encrypted},
		{name: "2 no version", setUp: newClient("acme"), url: "https://acme.biapi.pro/users/me/connections", want: encrypted},
		{name: "2 no version, update", setUp: newClient("acme"), url: "https://acme.biapi.pro/users/me/connections/42", body: update, want: encrypted},
		{name: "2 trailing dot", setUp: newClient("acme"), url: "https://acme.biapi.pro/2.0/users/me/connections.", want: encrypted},
		{name: "2 trailing space", setUp: newClient("acme"), url: "https://acme.biapi.pro/2.0/users/me/connections%20", want: encrypted},
		{name: "2 trailing tab and dots", setUp: newClient("acme"), url: "https://acme.biapi.pro/2.0/users/me/connections%09..", want: encrypted},
		{name: "2 format suffix", setUp: newClient("acme"), url: "https://acme.biapi.pro/2.0/users/me/connections.json", want: encrypted},
		{name: "2 format suffix on the update", setUp: newClient("acme"), url: "https://acme.biapi.pro/2.0/users/me/connections/42.json", body: update, want: encrypted},
		{name: "2 CONNECT with a dot segment", setUp: verifyOnly, method: "CONNECT", url: "https://acme.biapi.pro/2.0/./users/me/connections", want: refused, reason: "cleartext: /*, /*"},
		{name: "2 CONNECT with a double slash", setUp: verifyOnly, method: "CONNECT", url: "https://acme.biapi.pro/2.0//users/me/connections/", want: refused, reason: "cleartext: /*, /*"},
		{name: "2 another version through a relay", setUp: verifyOnly, url: "https://acme.biapi.pro/3.0/users/me/connections", want: refused, reason: "cleartext: /*, /*"},
		// 3. A body whose root is not an object.
		{name: "3 body stringified twice", setUp: newClient("acme"), url: connections, body: `"{\"login\": \"john\", \"password\": \"` + secret + `\"}"`, want: refused, reason: "the body is a JSON string, not an object: was it stringified twice?"},
		{name: "3 body stringified twice, through a relay", setUp: verifyOnly, url: connections, body: `"{\"password\": \"` + secret + `\"}"`, want: refused, reason: "the body is a JSON string"},
		{name: "3 body that is a bare string", setUp: newClient("acme"), url: connections, body: `"` + secret + `"`, want: refused, reason: "the body is a JSON string"},
		{name: "3 body that is a number", setUp: newClient("acme"), url: connections, body: `1234`, want: refused, reason: "the body is a number"},
		{name: "3 body that is true", setUp: newClient("acme"), url: connections, body: `true`, want: refused, reason: "the body is a boolean"},
		{name: "3 body that is null", setUp: newClient("acme"), url: connections, body: `null`, want: refused, reason: "the body is null"},
		{name: "3 body that is an array", setUp: newClient("acme"), url: connections, body: `["` + secret + `"]`, want: refused, reason: "the body is an array, not an object"},
		// 4. Payment fields that are not an object.
		{name: "4 payment fields stringified", setUp: newClient("acme"), url: "https://acme.biapi.pro/2.0/payments/9", body: `{"fields": "{\"website\": \"` + secret + `\"}"}`, want: refused, reason: "/fields is a string, not an object: was it stringified twice?"},
		{name: "4 payment fields an array", setUp: newClient("acme"), url: "https://acme.biapi.pro/2.0/payments/9", body: `{"fields": ["` + secret + `"]}`, want: refused, reason: "/fields is an array, not an object"},
		{name: "4 payment fields a number", setUp: newClient("acme"), url: "https://acme.biapi.pro/2.0/payments/9", body: `{"fields": 1234}`, want: refused, reason: "/fields is a number"},
		{name: "4 payment fields null", setUp: newClient("acme"), url: "https://acme.biapi.pro/2.0/payments/9", body: `{"validated": true, "fields": null}`, want: passed},
		// 5. Credentials in the query string.
		{name: "5 credential in the query", setUp: newClient("acme"), url: "https://acme.biapi.pro/2.0/users/me/connections/42?password=" + secret, want: refused, reason: "query parameter 1 (*): credentials go in the JSON body"},
		{name: "5 credential in the query, no body", setUp: newClient("acme"), url: "https://acme.biapi.pro/2.0/users/me/connections/42?source=x;otp=" + secret, body: "-", want: refused, reason: "query parameter 2 (*)"},
		{name: "5 credential in the query, bracket notation", setUp: newClient("acme"), url: "https://acme.biapi.pro/2.0/payments/9?fields%5Bwebsite%5D=" + secret, body: "-", want: refused, reason: "query parameter 1 (*)"},
		{name: "5 credential in the query, through a relay", setUp: verifyOnly, method: "DELETE", url: "https://acme.biapi.pro/2.0/users/me/connections?password=" + secret, body: "-", want: refused, reason: "query parameter 1 (*)"},
		{name: "5 a GET's query is not checked", setUp: newClient("acme"), method: "GET", url: "https://acme.biapi.pro/2.0/users/me/connections?limit=50&offset=0", body: "-", want: passed},
		{name: "5 a stringified object in the query", setUp: newClient("acme"), url: "https://acme.biapi.pro/2.0/payments/9?fields=%7B%22website%22%3A%22" + secret + "%22%7D", body: `{"validated": true}`, want: refused, reason: `query parameter 1 ("fields")`},
		{name: "5 documented query parameters", setUp: newClient("acme"), url: connections + "?source=openapi&expand=accounts", want: encrypted},
		{name: "5 credential in another domain's query", setUp: newClient("acme"), method: "PUT", url: "https://acme-sandbox.biapi.pro/2.0/users/me/connections?password=" + secret, body: "-", want: refused, reason: "the host is not that of route"},
		// 6. The recipient update.
		{name: "6 recipient update", setUp: newClient("acme"), url: "https://acme.biapi.pro/2.0/users/me/accounts/1/recipients/2", body: `{"label": "rent", "code": "` + secret + `"}`, want: encrypted},
		{name: "6 recipient update through a relay", setUp: verifyOnly, url: "https://acme.biapi.pro/2.0/users/me/accounts/1/recipients/2", body: `{"label": "rent", "code": "` + secret + `"}`, want: refused, reason: "cleartext: /*"},
		{name: "6 recipient update under another owner", setUp: newClient("acme"), url: "https://acme.biapi.pro/2.0/users/me/recipients/5", body: `{"label": "rent", "code": "` + secret + `"}`, want: encrypted},
		{name: "6 recipient update under a connection's account", setUp: newClient("acme"), url: "https://acme.biapi.pro/2.0/users/me/connections/1/accounts/2/recipients/5", body: `{"code": "` + secret + `"}`, want: encrypted},
		{name: "6 transfer update under an account", setUp: newClient("acme"), url: "https://acme.biapi.pro/2.0/users/me/accounts/2/transfers/7", body: `{"validated": true, "code": "` + secret + `"}`, want: encrypted},
		{name: "6 transfer update under a recipient, through a relay", setUp: verifyOnly, url: "https://acme.biapi.pro/2.0/users/me/accounts/2/recipients/5/transfers/7", body: `{"validated": true, "code": "` + secret + `"}`, want: refused, reason: "cleartext: /*"},
		// A redirect from a credential request to another credential resource.
		{name: "1 a gateway redirecting a connection creation to a payment", setUp: redirecting("/2.0/payments/x"), url: connections, want: refused, before: 1, reason: `a redirect to the resource of route "acme.biapi.pro/payments/{payment}"`},
		{name: "1 a redirect elsewhere keeps the first request's route", setUp: redirecting("/maintenance"), url: connections, want: encrypted},
		// Paths that read as two resources, or hide a query.
		{name: "2 a dot segment after another resource", setUp: newClient("acme"), url: "https://acme.biapi.pro/2.0/users/me/connections/payments/..", want: refused, reason: "reads as the resources of two routes"},
		{name: "2 a query written into the path", setUp: newClient("acme"), url: "https://acme.biapi.pro/2.0/users/me/connections%3Fsource=openapi", want: encrypted},
		// 7. A JWE in the input.
		{name: "7 JWE in the input", setUp: newClient("acme"), url: connections, body: "jwe", want: refused, reason: "already encrypted: /*: a JWE is as good as the credential it holds"},
		// 9. Member names that look like identifiers.
		{name: "9 credential as an identifier-like member name", setUp: newClient("acme"), url: connections, body: `{"id_connector": 40, "` + secret + `": 5}`, want: refused, reason: "/* is a number"},
		{name: "9 credential as an identifier-like member name, through a relay", setUp: verifyOnly, url: connections, body: `{"id_connector": 40, "` + secret + `": 5}`, want: refused, reason: "cleartext: /* (a number)"},
		// 11. The payment endpoint's two bodies.
		{name: "11 SubmitFieldValues, chosen per request", setUp: newClient("acme"), url: "https://acme.biapi.pro/2.0/payments/9", body: `{"fields": {"sms_code": "123456"}}`, ctx: powens.SubmitFieldValues, want: passed},
		{name: "11 a validation body sent as SubmitFieldValues", setUp: newClient("acme"), url: "https://acme.biapi.pro/2.0/payments/9", body: `{"validate_mechanism": "webauth", "webview_url": "https://x.example", "fields": {"website": "` + secret + `"}}`, ctx: powens.SubmitFieldValues, want: refused, reason: "cleartext: /validate_mechanism, /webview_url"},
		{name: "11 a validation body missing members is encrypted", setUp: newClient("acme"), url: "https://acme.biapi.pro/2.0/payments/9", body: `{"fields": {"website": "` + secret + `"}}`, want: encrypted},
		{name: "11 SubmitFieldValues leaves other requests alone", setUp: newClient("acme"), url: connections, ctx: powens.SubmitFieldValues, want: encrypted},
		// A relay checks that JWEs are made with the current key.
		{name: "relay: JWE of another key", setUp: verifyOnly, url: "https://acme.biapi.pro/2.0/relay/1", body: `{"fields": {"code": "` + otherKeyJWE() + `"}}`, want: refused, reason: "not encrypted with a key the API serves: /fields/* (a kid the key source does not know)"},
		{name: "relay: JWE of another key of the same size", setUp: verifyOnly, url: "https://acme.biapi.pro/2.0/relay/1", body: `{"fields": {"code": "` + sameSizeKeyJWE() + `"}}`, want: refused, reason: "(a kid the key source does not know)"},
		{name: "relay: forged kid, other modulus", setUp: verifyOnly, url: "https://acme.biapi.pro/2.0/relay/1", body: "forged", want: refused, reason: "(does not fit the key its kid names)"},
		{name: "relay: the current kid, a zero-filled encrypted key, the cleartext as ciphertext", setUp: verifyOnly, url: "https://acme.biapi.pro/2.0/relay/1", body: "zeros", want: refused, reason: "(does not fit the key its kid names)"},
		{name: "relay: cleartext", setUp: verifyOnly, url: "https://acme.biapi.pro/2.0/relay/1", body: `{"fields": {"code": "` + secret + `"}}`, want: refused, reason: "cleartext: /fields/*"},
	}
}

// otherKeyJWE is a JWE of the secret, made with a key that the test API
// never serves.
var otherKeyJWE = sync.OnceValue(func() string {
	pub := fixture.Public(fixture.RSA3072)
	jwe, err := e2ee.NewEncryptor(e2ee.StaticKey(&e2ee.Key{ID: "other", PublicKey: pub})).EncryptString(context.Background(), secret)
	if err != nil {
		panic(err)
	}
	return jwe
})

// sameSizeKeyJWE is a JWE of the secret, made with a key of the test API's
// modulus size that the test API does not serve: only its kid tells it from
// a JWE of the API's key.
var sameSizeKeyJWE = sync.OnceValue(func() string {
	pub := fixture.Public(fixture.RSA2048C)
	jwe, err := e2ee.NewEncryptor(e2ee.StaticKey(&e2ee.Key{ID: fixture.Thumbprint(pub), PublicKey: pub})).EncryptString(context.Background(), secret)
	if err != nil {
		panic(err)
	}
	return jwe
})

// TestMistakesFailClosed sets up a client as an integrator might get it
// wrong, sends a credential, and checks the outcome: a configuration error
// (and a refusal if the integrator goes on), a refusal with nothing sent, or
// the credential encrypted. The credential appears in no error, no log line
// and nothing the API received.
func TestMistakesFailClosed(t *testing.T) {
	for _, tt := range mistakes() {
		t.Run(tt.name, func(t *testing.T) {
			api := e2eetest.NewServer()
			defer api.Close()
			var logs bytes.Buffer
			log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			body := tt.body
			switch body {
			case "":
				body = cleartext
			case "-":
				body = ""
			case "forged": // the current kid on a JWE of a 3072-bit key
				body = `{"fields": {"code": "` + forgeKid(t, otherKeyJWE(), api.Key().ID) + `"}}`
			case "zeros": // the current kid, a zero-filled encrypted key, the cleartext as ciphertext
				header := fmt.Sprintf(`{"alg":"RSA-OAEP-256","enc":"A256GCM","kid":%q}`, api.Key().ID)
				body = `{"fields": {"code": "` + fixture.B64([]byte(header)) + "." + fixture.B64(make([]byte, api.Key().PublicKey.Size())) +
					"." + fixture.B64(make([]byte, 12)) + "." + fixture.B64([]byte(secret)) + "." + fixture.B64(make([]byte, 16)) + `"}}`
			case "jwe": // a JWE of the credential, made with the API's key
				jwe, err := e2ee.NewEncryptor(e2ee.StaticKey(api.Key())).EncryptString(context.Background(), secret)
				if err != nil {
					t.Fatal(err)
				}
				body = `{"id_connector": 40, "login": "john", "password": "` + jwe + `"}`
			}

			client, cfgErr := tt.setUp(t, api, log)
			checkNoSecret(t, "configuration error", cfgErr)
			switch {
			case tt.want == configError && cfgErr == nil:
				t.Fatalf("set-up gave no error; want one saying %q", tt.reason)
			case tt.want == configError && !strings.Contains(cfgErr.Error(), tt.reason):
				t.Errorf("set-up error = %q; want %q", cfgErr, tt.reason)
			case tt.want != configError && cfgErr != nil:
				t.Fatalf("set-up error = %v; want none", cfgErr)
			}

			var err error
			if client != nil {
				req, rerr := http.NewRequest(cmp.Or(tt.method, "POST"), tt.url, strings.NewReader(body))
				if rerr != nil {
					t.Fatal(rerr)
				}
				req.Header.Set("Content-Type", "application/json")
				for k, v := range tt.header {
					req.Header[k] = v
				}
				if tt.ctx != nil {
					req = req.WithContext(tt.ctx(req.Context()))
				}
				var resp *http.Response
				if resp, err = client.Do(req); err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
			if uerr := (*url.Error)(nil); strings.Contains(tt.url, secret) && errors.As(err, &uerr) {
				// http.Client's error quotes the URL, query included: a
				// credential there shows wherever the URL does. The
				// Transport's own error must not add it.
				checkNoSecret(t, "RoundTrip error", uerr.Err)
			} else {
				checkNoSecret(t, "RoundTrip error", err)
			}
			if strings.Contains(logs.String(), secret[:8]) {
				t.Errorf("a log line carries the credential:\n%s", logs.String())
			}
			for _, r := range api.Requests() {
				if bytes.Contains(r.Body, []byte(secret)) {
					t.Errorf("the API received the credential in cleartext: %.120s", r.Body)
				}
			}

			switch tt.want {
			case configError, refused:
				if client == nil && tt.want == configError {
					return // nothing to send with
				}
				if !errors.Is(err, e2ee.ErrNotSent) {
					t.Errorf("request error = %v; want one wrapping ErrNotSent", err)
				}
				if err != nil && tt.want == refused && !strings.Contains(err.Error(), tt.reason) {
					t.Errorf("request error = %q; want %q", err, tt.reason)
				}
				if n := api.APIRequests(); n != tt.before {
					t.Errorf("%d requests reached the API; want %d", n, tt.before)
				}
			case encrypted:
				if err != nil {
					t.Fatalf("request error = %v; want the request sent", err)
				}
				r, ok := api.LastRequest()
				if !ok || r.Err != nil || len(r.Decrypted) == 0 {
					t.Fatalf("the API got %v, %v; want a body with JWEs", ok, r.Err)
				}
				if r.Opened != body {
					t.Errorf("the API reads %.200s; want %.200s", r.Opened, body)
				}
			case passed:
				if err != nil {
					t.Fatalf("request error = %v; want the request sent", err)
				}
				if r, ok := api.LastRequest(); !ok || string(r.Body) != body {
					t.Errorf("the API got %q; want %q", r.Body, body)
				}
			}
		})
	}
}

// forgeKid returns jwe with the kid of its protected header replaced by kid.
func forgeKid(t *testing.T, jwe, kid string) string {
	t.Helper()
	h, err := fixture.Header(jwe)
	if err != nil {
		t.Fatal(err)
	}
	header := fmt.Sprintf(`{"alg":%q,"enc":%q,"kid":%q}`, h["alg"], h["enc"], kid)
	_, rest, _ := strings.Cut(jwe, ".")
	return fixture.B64([]byte(header)) + "." + rest
}

// checkNoSecret fails when err, or an error it wraps, carries (part of) the
// credential or a raw control character.
func checkNoSecret(t *testing.T, what string, err error) {
	t.Helper()
	for e := err; e != nil; {
		msg := e.Error()
		if strings.Contains(msg, secret[:8]) {
			t.Errorf("%s carries the credential: %q", what, msg)
		}
		if strings.ContainsAny(msg, "\n\r\x1b\x00") {
			t.Errorf("%s carries a control character: %q", what, msg)
		}
		switch u := e.(type) {
		case interface{ Unwrap() error }:
			e = u.Unwrap()
		case interface{ Unwrap() []error }:
			for _, c := range u.Unwrap() {
				checkNoSecret(t, what, c)
			}
			e = nil
		default:
			e = nil
		}
	}
}

// logging is a RoundTripper that records the request bodies it sees, as a
// logging or tracing middleware would, and sends them on with next.
type logging struct {
	next http.RoundTripper
	mu   sync.Mutex
	seen bytes.Buffer
}

func (l *logging) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil && req.Body != http.NoBody {
		body, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		l.mu.Lock()
		l.seen.Write(body)
		l.mu.Unlock()
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	return l.next.RoundTrip(req)
}

func (l *logging) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seen.String()
}

// TestPlacementTransportOutermost checks the placement rule both ways: a
// RoundTripper in the encrypting Transport's Base (Options.HTTPClient's
// Transport) sees JWEs only, and one wrapped around the client's Transport
// sees the cleartext. So the encrypting Transport must be the outermost.
func TestPlacementTransportOutermost(t *testing.T) {
	api := e2eetest.NewServer()
	defer api.Close()
	inner := &logging{next: api.Transport()}
	client, err := powens.NewClient("acme", &powens.Options{HTTPClient: &http.Client{Transport: inner}})
	if err != nil {
		t.Fatal(err)
	}
	outer := &logging{next: client.Transport}
	client.Transport = outer // the wrong place, as an otelhttp-style wrapper would be put

	resp, err := client.Post(connections, "application/json", strings.NewReader(cleartext))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if r, ok := api.LastRequest(); !ok || r.Opened != cleartext {
		t.Fatalf("the API reads %q; want the request encrypted", r.Opened)
	}
	if got := inner.String(); strings.Contains(got, secret) || !strings.Contains(got, `"password": "eyJ`) {
		t.Errorf("a RoundTripper in Base saw %.200s; want JWEs only", got)
	}
	if got := outer.String(); !strings.Contains(got, secret) {
		t.Errorf("a RoundTripper wrapped around the Transport saw %.200s; want the cleartext (it sees the request first)", got)
	}
}
