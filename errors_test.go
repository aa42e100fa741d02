package e2ee

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/credseal/e2ee/internal/fixture"
)

// TestErrorsHaveOnePrefix takes every path that produces a sentinel of this
// package, and a few that wrap one another's errors (a Transport refusing
// because its KeyFetcher's key is stale, say): each message starts with
// "e2ee: " and has it once, and matches its sentinel.
func TestErrorsHaveOnePrefix(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		small := fixture.JWK(fixture.Public(fixture.RSA1024), map[string]any{"kid": "small"})
		ok := newKeyServer(serveJWK(jwkA))
		okFetcher := ok.fetcher(t, &FetcherConfig{MaxStale: time.Hour})
		mustKey(t, okFetcher)
		ok.set(answer(503, "down"))
		time.Sleep(3 * time.Hour) // past expiry and MaxStale
		down := newKeyServer(answer(503, "down")).fetcher(t, nil)
		tooLarge := newKeyServer(serveJWK([]byte(strings.Repeat(" ", 1<<10)))).fetcher(t, &FetcherConfig{MaxBodyBytes: 100})
		ineligible := newKeyServer(serveJWK(small)).fetcher(t, nil)
		closed := newKeyServer(serveJWK(jwkA)).fetcher(t, nil)
		closed.Close()
		foreign := funcSource(func(context.Context) (*Key, error) { return nil, errors.New("vault: sealed") })

		ctx := context.Background()
		encrypt := func(src KeySource) error {
			_, err := NewEncryptor(src).EncryptString(ctx, "hunter2")
			return err
		}
		payload := func(src KeySource, body string) error {
			p, err := NewPayload(NewEncryptor(src), "/*", "!/id")
			if err != nil {
				t.Fatal(err)
			}
			_, err = p.WithMaxValues(2).Encrypt(ctx, []byte(body))
			return err
		}
		transport := func(src KeySource, host, contentType, body string) error {
			p, err := NewPayload(NewEncryptor(src), "/*")
			if err != nil {
				t.Fatal(err)
			}
			tr := &Transport{Base: roundTripFunc(func(*http.Request) (*http.Response, error) {
				t.Error("a refused request reached the base")
				return nil, errors.New("sent")
			}), MaxBodyBytes: 64, Routes: []Route{{Pattern: "POST api.example/connections", Payload: p}}}
			req, _ := newRequest(t, "POST", "https://"+host+"/connections", body)
			if contentType != "" {
				req.Header.Set("Content-Type", contentType)
			}
			_, err = tr.RoundTrip(req)
			return err
		}
		_, parseErr := ParseKey(small)
		_, pemErr := ParsePEM([]byte("-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n"), "k")
		_, staleErr := okFetcher.Key(ctx)
		_, fetchErr := down.Key(ctx)
		_, tooLargeErr := tooLarge.Key(ctx)
		_, ineligibleErr := ineligible.Key(ctx)
		_, closedErr := closed.Key(ctx)
		_, configErr := NewKeyFetcher("https://keys.example/key", &FetcherConfig{Timeout: -1})
		_, patternErr := NewPayload(nil, "login")
		checkErr := func() error { p, _ := NewPayload(nil, "/password"); return p.Check([]byte(`{"password":"x"}`)) }()
		validateErr := (&Transport{}).Validate()
		_, noRoutesErr := (&Transport{}).RoundTrip(mustRequest(t))

		for _, tt := range []struct {
			name string
			err  error
			is   error
		}{
			{"ParseKey", parseErr, ErrUnsuitableKey},
			{"ParsePEM", pemErr, ErrUnsuitableKey},
			{"KeyFetcher, stale", staleErr, ErrKeyStale},
			{"KeyFetcher, endpoint down", fetchErr, nil},
			{"KeyFetcher, too large", tooLargeErr, ErrResponseTooLarge},
			{"KeyFetcher, ineligible key", ineligibleErr, ErrUnsuitableKey},
			{"KeyFetcher, closed", closedErr, ErrFetcherClosed},
			{"NewKeyFetcher", configErr, nil},
			{"NewPayload", patternErr, nil},
			{"Check", checkErr, ErrCleartext},
			{"Validate", validateErr, nil},
			{"Encryptor, stale", encrypt(okFetcher), ErrKeyStale},
			{"Encryptor, endpoint down", encrypt(down), ErrKeyUnavailable},
			{"Encryptor, ineligible key", encrypt(ineligible), ErrUnsuitableKey},
			{"Encryptor, closed", encrypt(closed), ErrFetcherClosed},
			{"Encryptor, another package's source", encrypt(foreign), ErrKeyUnavailable},
			{"Encryptor, ineligible static key", encrypt(StaticKey(&Key{ID: "k", PublicKey: fixture.Public(fixture.RSA1024)})), ErrUnsuitableKey},
			{"Payload, not JSON", payload(StaticKey(fixtureKey(fixture.RSA2048A)), `{`), ErrNotJSON},
			{"Payload, not a string", payload(StaticKey(fixtureKey(fixture.RSA2048A)), `{"pin":1}`), ErrNotString},
			{"Payload, too many values", payload(StaticKey(fixtureKey(fixture.RSA2048A)), `{"a":"","b":"","c":""}`), ErrTooManyValues},
			{"Payload, key stale", payload(okFetcher, `{"a":"x"}`), ErrKeyStale},
			{"Transport, key stale", transport(okFetcher, "api.example", "", `{"a":"x"}`), ErrKeyStale},
			{"Transport, endpoint down", transport(down, "api.example", "", `{"a":"x"}`), ErrKeyUnavailable},
			{"Transport, another package's source", transport(foreign, "api.example", "", `{"a":"x"}`), ErrKeyUnavailable},
			{"Transport, not JSON", transport(down, "api.example", "", `x`), ErrNotJSON},
			{"Transport, form", transport(down, "api.example", "application/x-www-form-urlencoded", `a=x`), ErrNotJSON},
			{"Transport, too large", transport(down, "api.example", "", `{"a":"`+strings.Repeat("x", 100)+`"}`), ErrNotSent},
			{"Transport, another host", transport(down, "other.example", "", `{"a":"x"}`), ErrNotSent},
			{"Transport, no routes", noRoutesErr, ErrNotSent},
			{"FetchError", &FetchError{URL: "https://k.example/key", StatusCode: 503}, nil},
		} {
			if tt.err == nil {
				t.Errorf("%s: no error", tt.name)
				continue
			}
			msg := tt.err.Error()
			if !strings.HasPrefix(msg, "e2ee: ") || strings.Count(msg, "e2ee: ") != 1 {
				t.Errorf("%s: %q; want one e2ee: prefix, at the start", tt.name, msg)
			}
			if tt.is != nil && !errors.Is(tt.err, tt.is) {
				t.Errorf("%s: %v; want errors.Is %v", tt.name, tt.err, tt.is)
			}
			if strings.HasPrefix(tt.name, "Transport") && !errors.Is(tt.err, ErrNotSent) {
				t.Errorf("%s: %v; want errors.Is ErrNotSent", tt.name, tt.err)
			}
		}
	})
}

// mustRequest returns a POST request with a small JSON body.
func mustRequest(t *testing.T) *http.Request {
	req, _ := newRequest(t, "POST", "https://api.example/connections", `{"a":"x"}`)
	return req
}
