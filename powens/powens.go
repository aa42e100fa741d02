// Package powens holds what is specific to the Powens API (formerly Budget
// Insight): the URL of a domain's end-to-end encryption key, and the requests
// that the API documents as end-to-end encrypted.
//
// A backend that forwards credentials to the API needs one call:
//
//	client, err := powens.NewClient("acme", nil)
//	if err != nil {
//		return err // a configuration mistake: nothing could be sent
//	}
//	// client encrypts the credentials of the requests listed below.
//
// [NewClient] puts together [KeyURL], an [e2ee.KeyFetcher], [Routes] and an
// [e2ee.Transport]; use them apart for an integration that needs to.
//
// # Domains
//
// Every function here takes the domain name alone ("acme",
// "acme-sandbox": one DNS label of letters, digits and hyphens, 1 to 63
// characters, not starting or ending with a hyphen), or the API host
// ("acme.biapi.pro", in any letter case), and refuses anything else with an
// error that says what to pass: a URL, a path, a port, another parent
// domain, several labels, characters that a DNS label cannot have. A
// client or a set of routes covers one domain; a credential-carrying request
// to another domain's encrypted endpoints is refused, not sent in cleartext.
//
// # Requests covered
//
// [Routes] returns one route per request, on https://{domain}.biapi.pro
// ({user} may be "me"). Each matches its resource, the documented path
// without the API version, wherever the request's path ends with it: under
// /2.0, another version or none, and below a gateway's prefix. The API takes
// these requests as POST; the routes match any method, so that a body sent
// with another one is not let through in cleartext (requests without a body
// pass untouched):
//
//   - connection creation, /users/{user}/connections: every top-level
//     member but id_connector, connector_uuid, source, id_provider and id_bank;
//   - connection update (new credentials, or additional information such as
//     an OTP), /users/{user}/connections/{connection}: every top-level
//     member but source, active, expire, resume and refresh_auth;
//   - transfer update (validation with credentials), /transfers/{transfer}
//     under any owner (/users/{user}, /users/{user}/accounts/{account},
//     .../recipients/{recipient}, ...): every top-level member but
//     id_account, amount, label, beneficiary_type, id_recipient,
//     beneficiary_number, beneficiary_label and validated;
//   - recipient update (validation with credentials),
//     /recipients/{recipient} under any owner (/users/{user},
//     /users/{user}/accounts/{account}, ...): every top-level member but
//     iban, label, category and background;
//   - payment validation, /payments/{payment}: every value of the nested
//     fields object, and nothing outside it.
//
// A body must be a JSON object, and a payment's fields an object (or null):
// a stringified body or fields is refused, since its credentials would go
// unseen. A query parameter that a route designates is refused too, as a
// credential in a URL, but on GET and HEAD requests; the documented ones,
// source, background, psu_requested, show_sensitive, expand, all and
// period, are allowed.
//
// The provider's end-to-end encryption page does not list the recipient
// update. Its Transfers reference says that the body is built from the
// recipient's requested fields, the connector field values that validating
// it needs, as the listed transfer update takes them; so this package
// encrypts them. Encrypting is the safe side: a value sent encrypted where
// the API wanted cleartext fails loudly, a credential sent in cleartext
// where it should have been encrypted does not.
//
// # Gateways
//
// A request to a host that no route names, on a route's resource, is
// refused: it may be a client set up for one domain posting to another, or
// a gateway the client was not told of. [Options.BaseURL] declares a
// gateway ("https://egress.internal/powens"): the routes then name its host
// too, and the key is fetched through it.
//
// # Why a deny-list
//
// The credential members are named after the connector's fields, which vary
// by bank and change over time, and carry no "sensitive" flag. Listing the
// structural members that stay clear, and encrypting everything else, makes
// a new connector field encrypted by default: a forgotten name fails safe.
// A member outside the deny-list that is not a string (a number, say) makes
// the request fail rather than go out unencrypted.
//
// # Payments
//
// The payment endpoint takes six bodies. The validation (validate_mechanism,
// webview_url, fields, payer, ...) takes its fields encrypted; resume,
// confirm, cancel and the PSU validation carry no fields. SubmitFieldValues,
// sent when the payment's action is additionalInformationNeeded, takes
// fields in cleartext: send it with a context from [SubmitFieldValues], and
// the route lets its fields through as they are, refusing a body with any
// other member. Without that context, a payment's fields are encrypted,
// whatever the body looks like: a validation body missing its other members
// is still a validation.
//
// # Key rejection
//
// The API's documentation does not say how it reports a value it cannot
// decrypt (for example one encrypted with a retired key), so this package
// offers no KeyRejected predicate. An integrator who knows the response can
// set [Options.KeyRejected] or [e2ee.Transport.KeyRejected]; see the
// example of [Options].
package powens

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/credseal/e2ee"
	"github.com/credseal/e2ee/internal/redact"
)

// apiHost is the parent domain of every integrator's API domain.
const apiHost = "biapi.pro"

// keyPath is the path, below the API host (or a gateway's prefix), at which
// the API serves a domain's end-to-end encryption key.
const keyPath = "/2.0/publickey"

// KeyURL returns https://{domain}.biapi.pro/2.0/publickey, where the API
// serves the domain's end-to-end encryption key. The domain is read as
// every function of this package reads it (see the package documentation):
// a domain that is not a DNS label, which could point the URL at another
// host, is an error.
func KeyURL(domain string) (string, error) {
	host, err := hostOf(domain)
	if err != nil {
		return "", err
	}
	return "https://" + host + keyPath, nil
}

// hostOf returns {domain}.biapi.pro, the API host of domain, in lower case.
//
// The domain is the domain name alone, as in "acme" or "acme-sandbox": one
// DNS label of letters, digits and hyphens, 1 to 63 characters, not starting
// or ending with a hyphen. The API host itself, "acme.biapi.pro" in any
// letter case, is taken as the same domain. Anything else is an error that
// says what to pass: a URL, a path, a port, a host under another parent
// domain, several labels, or characters that a DNS label cannot have.
func hostOf(domain string) (string, error) {
	name, err := domainName(domain)
	if err != nil {
		return "", err
	}
	return name + "." + apiHost, nil
}

// domainName returns the domain name that domain gives, in lower case.
func domainName(domain string) (string, error) {
	const advice = `pass the domain name alone, e.g. "acme" for https://acme.biapi.pro`
	bad := func(why string) error {
		return fmt.Errorf("powens: domain %s %s: %s", redact.Quote(shownDomain(domain)), why, advice)
	}
	switch {
	case domain == "":
		return "", errors.New("powens: domain is empty: " + advice)
	case strings.Contains(domain, "://"):
		return "", bad("is a URL")
	case strings.ContainsAny(domain, "/?#"):
		return "", bad("has a path")
	case strings.ContainsAny(domain, "@\\"):
		return "", bad("has characters of a URL")
	case strings.Contains(domain, ":"):
		return "", bad("has a port")
	}
	name := strings.ToLower(domain)
	if n, ok := strings.CutSuffix(name, "."+apiHost); ok {
		name = n
	}
	if strings.Contains(name, ".") {
		return "", bad("is neither one DNS label nor a host directly under " + apiHost)
	}
	if err := checkLabel(name); err != nil {
		return "", bad(err.Error())
	}
	return name, nil
}

// shownDomain returns domain as an error may show it: without what a URL
// could carry a token in, its user information, query and fragment.
func shownDomain(domain string) string {
	if strings.Contains(domain, "://") {
		return redact.RawURL(domain)
	}
	if i := strings.LastIndexByte(domain, '@'); i >= 0 {
		domain = "..." + domain[i:]
	}
	if i := strings.IndexAny(domain, "?#"); i >= 0 {
		domain = domain[:i] + "..."
	}
	return domain
}

func checkLabel(label string) error {
	switch {
	case label == "":
		return errors.New("has an empty label")
	case len(label) > 63:
		return errors.New("is longer than 63 characters")
	case label[0] == '-' || label[len(label)-1] == '-':
		return errors.New("starts or ends with a hyphen")
	}
	for _, c := range label {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return fmt.Errorf("has %q, which a DNS label cannot have", c)
		}
	}
	return nil
}

// Request names one of the API's end-to-end encrypted requests.
type Request string

// The requests that the API documents as end-to-end encrypted, and the
// recipient update (see the package documentation).
const (
	ConnectionCreate  Request = "connection-create"
	ConnectionUpdate  Request = "connection-update"
	TransferUpdate    Request = "transfer-update"
	RecipientUpdate   Request = "recipient-update"
	PaymentValidation Request = "payment-validation"
)

// preset is what this package knows of one request.
type preset struct {
	path     string   // below the host, with the API version, as documented
	resource string   // what its routes match, below any prefix (see Routes)
	fields   []string // field patterns
}

var presets = map[Request]preset{
	ConnectionCreate: {"/2.0/users/{user}/connections", "/users/{user}/connections", []string{
		"/*", "!/id_connector", "!/connector_uuid", "!/source", "!/id_provider", "!/id_bank",
	}},
	ConnectionUpdate: {"/2.0/users/{user}/connections/{connection}", "/users/{user}/connections/{connection}", []string{
		"/*", "!/source", "!/active", "!/expire", "!/resume", "!/refresh_auth",
	}},
	// The API takes a transfer, and a recipient, under several owners:
	// /users/{user}/accounts/{account}/transfers/{transfer},
	// /users/{user}/connections/{connection}/recipients/{recipient}, ...
	TransferUpdate: {"/2.0/users/{user}/transfers/{transfer}", "/transfers/{transfer}", []string{
		"/*", "!/id_account", "!/amount", "!/label", "!/beneficiary_type", "!/id_recipient",
		"!/beneficiary_number", "!/beneficiary_label", "!/validated",
	}},
	RecipientUpdate: {"/2.0/users/{user}/accounts/{account}/recipients/{recipient}", "/recipients/{recipient}", []string{
		"/*", "!/iban", "!/label", "!/category", "!/background",
	}},
	PaymentValidation: {"/2.0/payments/{payment}", "/payments/{payment}", []string{"/fields/*"}},
}

// submitFieldValues is the payment request that sends field values in
// cleartext (see SubmitFieldValues): nothing but its fields object, whose
// values are not designated. The members of a validation body are named, so
// that a refusal says which one it found.
var submitFieldValues = preset{"/2.0/payments/{payment}", "/payments/{payment}", []string{
	"/*", "!/fields", "/validate_mechanism", "/webview_url", "/website", "/payer", "/validated", "/connector_uuid",
}}

// submitFieldValuesVariant is the route variant of submitFieldValues.
const submitFieldValuesVariant = "powens.SubmitFieldValues"

// queryParameters are the documented query parameters of the requests
// above, none of which carries a credential; every other one whose name a
// route designates is refused (but on GET and HEAD requests).
var queryParameters = []string{"source", "background", "psu_requested", "show_sensitive", "expand", "all", "period"}

// Requests returns the end-to-end encrypted requests, in a fixed order: for
// code that takes a request by name or walks them all, such as a tool that
// lists the names it accepts (the e2ee command's --request) or a build step
// that hands every request's [Fields] to a user interface.
func Requests() []Request {
	return []Request{ConnectionCreate, ConnectionUpdate, TransferUpdate, RecipientUpdate, PaymentValidation}
}

// Fields returns the field patterns of request r, as [e2ee.NewPayload] takes
// them, or nil for an unknown request: what a user interface that encrypts
// before anything reaches the backend designates (see package
// github.com/credseal/e2ee/web).
func Fields(r Request) []string {
	p, ok := presets[r]
	if !ok {
		return nil
	}
	return append([]string(nil), p.fields...)
}

// SubmitFieldValues returns a copy of ctx under which a request to the
// payment endpoint, /payments/{payment}, is sent as the API's
// SubmitFieldValues request: its fields values in cleartext, as the API
// requires when the payment's action is additionalInformationNeeded. The
// body must then be the fields object alone; one with a member of a
// validation body (webview_url, validate_mechanism, ...) is refused, since
// a validation's fields must be encrypted. Without it, a payment body's
// fields values are encrypted, whatever its shape. Other requests sent with
// ctx are not affected.
//
// It applies to the clients of [NewClient] and the Transports of [Routes].
func SubmitFieldValues(ctx context.Context) context.Context {
	return e2ee.WithVariant(ctx, submitFieldValuesVariant)
}

// route returns the route of the request that p describes on host,
// encrypting with enc or, with verifyOnly, checking.
func route(host string, p preset, enc *e2ee.Encryptor, verifyOnly bool) (e2ee.Route, error) {
	payload, err := e2ee.NewPayload(enc, p.fields...)
	if err != nil {
		return e2ee.Route{}, fmt.Errorf("powens: %s: %w", p.path, err)
	}
	return e2ee.Route{
		Pattern:    host + p.resource,
		Payload:    payload.ObjectsOnly(),
		VerifyOnly: verifyOnly,
		AllowQuery: queryParameters,
	}, nil
}

// Routes returns the [e2ee.Transport] routes, on domain's API host, of every
// request the API documents as end-to-end encrypted, and of the recipient
// update, encrypting with enc; and the route of the payment request that
// [SubmitFieldValues] selects. [NewClient] puts them in a Transport; use
// them apart for a Transport of one's own.
//
// Each route matches its request's resource, the documented path without
// the API version ("acme.biapi.pro/users/{user}/connections"), or for a
// transfer or a recipient its last two segments, which the API takes under
// several owners ("acme.biapi.pro/transfers/{transfer}"), so that any
// version, none, and a gateway's prefix are covered. It refuses a body
// whose root is not an object, and a query parameter that it designates,
// but for the documented ones (source, background, ...).
func Routes(domain string, enc *e2ee.Encryptor) ([]e2ee.Route, error) {
	host, err := hostOf(domain)
	if err != nil {
		return nil, err
	}
	if enc == nil {
		return nil, errors.New("powens: nil Encryptor")
	}
	return routes([]string{host}, enc, false)
}

// VerifyRoutes returns the same routes as [Routes], in VerifyOnly mode: a
// [e2ee.Transport] with them refuses to send a body that still has a
// credential in cleartext. It needs no key. It is for a backend whose user
// interface encrypts and that sends the requests with a client of its own;
// a backend that forwards them as a reverse proxy uses [NewRelay], which
// also checks each JWE's kid.
func VerifyRoutes(domain string) ([]e2ee.Route, error) {
	host, err := hostOf(domain)
	if err != nil {
		return nil, err
	}
	return routes([]string{host}, nil, true)
}

// routes returns the routes of every request on each of hosts.
func routes(hosts []string, enc *e2ee.Encryptor, verifyOnly bool) ([]e2ee.Route, error) {
	var out []e2ee.Route
	for _, host := range hosts {
		for _, r := range Requests() {
			route, err := route(host, presets[r], enc, verifyOnly)
			if err != nil {
				return nil, err
			}
			out = append(out, route)
		}
		submit, err := route(host, submitFieldValues, nil, true)
		if err != nil {
			return nil, err
		}
		submit.Variant = submitFieldValuesVariant
		out = append(out, submit)
	}
	return out, nil
}
