package e2ee

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode"

	"github.com/credseal/e2ee/internal/fixture"
)

// errorTexts returns the messages of err and of every error it wraps.
func errorTexts(err error) []string {
	var texts []string
	var walk func(error)
	walk = func(e error) {
		if e == nil {
			return
		}
		texts = append(texts, e.Error(), fmt.Sprintf("%+v", e), fmt.Sprintf("%#v", e))
		switch u := e.(type) {
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		case interface{ Unwrap() []error }:
			for _, c := range u.Unwrap() {
				walk(c)
			}
		}
	}
	walk(err)
	return texts
}

// TestCanaryNeverLeaks sends a credential through every failure path of the
// Transport, the Payload, the Encryptor and the KeyFetcher under it, and
// looks for it in every error (and every error each wraps), in the fetcher's
// log, and in what reached the network.
func TestCanaryNeverLeaks(t *testing.T) {
	// The key endpoint's behaviour, switched per case.
	var mode atomic.Value
	mode.Store("ok")
	good := fixture.JWK(fixture.Public(fixture.RSA2048A), map[string]any{"kid": "a"})
	keySrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch mode.Load() {
		case "ok":
			w.Write(good)
		case "down":
			http.Error(w, "maintenance", http.StatusServiceUnavailable)
		case "huge":
			w.Write(bytes.Repeat([]byte(" "), 1<<20))
		case "small key":
			w.Write(fixture.JWK(fixture.Public(fixture.RSA1024), map[string]any{"kid": "small"}))
		}
	}))
	defer keySrv.Close()

	var logs logBuffer
	newFetcher := func() *KeyFetcher {
		f, err := NewKeyFetcher(keySrv.URL, &FetcherConfig{
			Logger:             slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
			MaxBodyBytes:       4 << 10,
			MinRefreshInterval: time.Nanosecond,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(f.Close)
		return f
	}

	var wire logBuffer // every body that reached the network
	base := roundTripFunc(func(req *http.Request) (*http.Response, error) {
		var b bytes.Buffer
		b.ReadFrom(req.Body)
		req.Body.Close()
		wire.Write(b.Bytes())
		return &http.Response{StatusCode: 400, Body: http.NoBody, Header: http.Header{}, Request: req}, nil
	})
	transport := func(f *KeyFetcher, maxBody int64) *Transport {
		create, err := NewPayload(NewEncryptor(f), "/*", "!/id_connector")
		if err != nil {
			t.Fatal(err)
		}
		check, err := NewPayload(nil, "/fields/*")
		if err != nil {
			t.Fatal(err)
		}
		return &Transport{Base: base, MaxBodyBytes: maxBody,
			KeyRejected: func(*http.Response) bool { return true },
			Routes: []Route{
				{Pattern: "POST /connections", Payload: create},
				{Pattern: "POST /payments/{id}", Payload: check, VerifyOnly: true},
				{Pattern: "POST api.example/tenant/{id}", Payload: create},
			}}
	}

	c := canary
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tt := range []struct {
		name    string
		keyMode string
		path    string
		body    string
		ctx     context.Context
		readErr bool
		maxBody int64
		host    string
		header  http.Header
		length  int64  // the declared Content-Length when not the body's: -1 for unknown
		reason  string // in the error, for the cases of a path of their own
	}{
		{name: "key endpoint down", keyMode: "down", body: `{"password": "` + c + `"}`},
		{name: "key endpoint too large", keyMode: "huge", body: `{"password": "` + c + `"}`},
		{name: "key not eligible", keyMode: "small key", body: `{"password": "` + c + `"}`},
		{name: "invalid JSON", body: `password=` + c},
		{name: "invalid character inside", body: `{"password": "` + c + `", x}`},
		{name: "truncated", body: `{"password": "` + c},
		{name: "invalid UTF-8", body: "{\"password\": \"" + c + "\xff\"}"},
		{name: "lone surrogate", body: `{"password": "` + c + `\udc00"}`},
		{name: "bad escape", body: `{"password": "` + c + `\x"}`},
		{name: "bad unicode escape", body: `{"password": "\u` + c + `"}`},
		{name: "credential in member position", body: `{"login": "bob", "password": "a","` + c + `", "id_connector": 1}`},
		{name: "trailing data", body: `{"password": "x"} "` + c + `"`},
		{name: "number", body: `{"password": "` + c + `", "pin": 12}`},
		{name: "object", body: `{"password": {"inner": "` + c + `"}}`},
		{name: "body read error", body: `{"password": "` + c + `"}`, readErr: true},
		{name: "body too large", body: `{"password": "` + c + `"}`, maxBody: 10},
		{name: "body too large, unknown length", body: `{"password": "` + c + `"}`, maxBody: 10, length: -1, reason: "exceeds the limit of 10 bytes"},
		{name: "declared length over the limit", body: `{"password": "` + c + `"}`, maxBody: 64, length: 1 << 40, reason: "exceeds the limit of 64"},
		{name: "body longer than its Content-Length", body: `{"password": "` + c + `"}`, length: 12, reason: "longer than its Content-Length"},
		{name: "two Content-Types", body: `{"password": "` + c + `"}`, header: http.Header{"Content-Type": {"application/json", "text/plain"}}, reason: "2 Content-Type headers"},
		{name: "cleartext on a VerifyOnly route", path: "/payments/1", body: `{"fields": {"code": "` + c + `"}}`},
		{name: "canceled", body: `{"password": "` + c + `"}`, ctx: canceled},
		{name: "key rejected, refresh fails", keyMode: "rejected", body: `{"password": "` + c + `"}`},
		{name: "another host", host: "other.example", path: "/tenant/1", body: `{"password": "` + c + `"}`, reason: "the host is not that of route"},
		{name: "another host, Unicode", host: "other。example", path: "/TENANT/1", body: `{"password": "` + c + `"}`, reason: "the host is not that of route"},
		{name: "form body", body: `password=` + c, header: http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, reason: "Content-Type is"},
		{name: "JSON labelled as text", body: `{"password": "` + c + `"}`, header: http.Header{"Content-Type": {"text/plain"}}, reason: "Content-Type is"},
		{name: "compressed body", body: `{"password": "` + c + `"}`, header: http.Header{"Content-Encoding": {"gzip"}}, reason: "compressed bodies"},
		{name: "too many values", body: `{"a": "` + strings.Repeat(c+`", "a": "`, 300) + c + `"}`, reason: "too many designated values"},
		{name: "too many values in a checked body", path: "/payments/1", body: `{"fields": {"a": "` + strings.Repeat(c+`", "a": "`, 300) + c + `"}}`, reason: "too many designated values"},
		{name: "templated member name", body: `{"login\", \"password\": \"` + c + `": 1}`, reason: "/* is a number"},
		{name: "templated member name, control characters", body: `{"` + c + `\u001b[2J\n": 1}`, reason: "/* is a number"},
		{name: "templated member name in a checked body", path: "/payments/1", body: `{"fields": {"login\", \"password\": \"` + c + `": 1}}`, reason: "/fields/* (a number)"},
		{name: "credential as an identifier-like member name", body: `{"` + c + `": 1}`, reason: "/* is a number"},
		{name: "credential as an identifier-like member name, checked", path: "/payments/1", body: `{"fields": {"` + c + `": 1}}`, reason: "/fields/* (a number)"},
		{name: "stringified body", body: `"{\"password\": \"` + c + `\"}"`, reason: "the body is a JSON string"},
		{name: "stringified fields, checked", path: "/payments/1", body: `{"fields": "{\"code\": \"` + c + `\"}"}`, reason: "/fields is a string"},
		{name: "a scalar where a pattern goes, named like a credential", path: "/payments/1", body: `{"fields": {"` + c + `": {}}, "x": 1}`, reason: "/fields/* (an object)"},
		{name: "JWE in the input", body: `{"password": "` + storedJWE() + `", "` + c + `": "x"}`, reason: "already encrypted: /*"},
		{name: "credential in the query", path: "/connections?" + c + "=1", body: `{}`, reason: "query parameter 1 (*)"},
		{name: "credential in the query, checked", path: "/payments/1?fields%5B" + c + "%5D=1", body: `{}`, reason: "query parameter 1 (*)"},
		{name: "gateway prefix, another host", host: "gw.example", path: "/" + c + "/tenant/1", body: `{"password": "` + c + `"}`, reason: "the host is not that of route"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFetcher()
			mode.Store("ok")
			if tt.keyMode != "" && tt.keyMode != "rejected" {
				mode.Store(tt.keyMode)
			}
			if tt.keyMode == "rejected" {
				if _, err := f.Key(context.Background()); err != nil {
					t.Fatal(err)
				}
				mode.Store("down") // the Transport's Refresh fails
			}
			path := cmp.Or(tt.path, "/connections")
			req, cb := newRequest(t, "POST", "https://"+cmp.Or(tt.host, "api.example")+path, tt.body)
			for k, v := range tt.header {
				req.Header[k] = v
			}
			switch {
			case tt.length < 0:
				req.ContentLength = 0 // unknown: read to the end
			case tt.length > 0:
				req.ContentLength = tt.length
			}
			if tt.readErr {
				cb.readErr = errors.New("connection reset")
			}
			if tt.ctx != nil {
				req = req.WithContext(tt.ctx)
			}
			resp, err := transport(f, tt.maxBody).RoundTrip(req)
			if resp != nil {
				resp.Body.Close()
			}
			if tt.keyMode == "rejected" {
				// The JWE was sent and rejected; the refresh fails, so the
				// caller gets the API's answer, and nothing is resent.
				if err != nil || resp == nil || resp.StatusCode != http.StatusBadRequest {
					t.Fatalf("RoundTrip = %v, %v; want the API's 400", resp, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("RoundTrip succeeded; want a failure")
			}
			if err != nil && !strings.Contains(err.Error(), tt.reason) {
				t.Errorf("RoundTrip error = %q; want %q", err, tt.reason)
			}
			for _, text := range errorTexts(err) {
				if strings.Contains(text, canary[:4]) {
					t.Errorf("an error carries (part of) the credential: %s", text)
				}
				if strings.ContainsFunc(text, unicode.IsControl) {
					t.Errorf("an error carries a control character: %q", text)
				}
			}
		})
	}

	// The Payload and Encryptor directly, and Check.
	p, err := NewPayload(NewEncryptor(newFetcher()), "/p")
	if err != nil {
		t.Fatal(err)
	}
	_, err1 := p.Encrypt(context.Background(), []byte(`{"p": 1, "q": "`+c+`"}`))
	err2 := p.Check([]byte(`{"p": "` + c + `"}`))
	_, err3 := NewEncryptor(StaticKey(nil)).EncryptString(context.Background(), c+"\xff")
	// NewPayload's errors quote the pattern: a pattern is configuration,
	// never a credential, so it has no case here.
	for _, err := range []error{err1, err2, err3} {
		if err == nil {
			t.Errorf("want an error")
		}
		for _, text := range errorTexts(err) {
			if strings.Contains(text, canary[:8]) {
				t.Errorf("an error carries the credential: %s", text)
			}
		}
	}

	if strings.Contains(logs.String(), canary[:8]) {
		t.Errorf("the fetcher's log carries the credential:\n%s", logs.String())
	}
	if strings.Contains(wire.String(), canary[:8]) {
		t.Errorf("the credential reached the network in cleartext")
	}
	if logs.String() == "" {
		t.Errorf("the fetcher logged nothing: the log check checked nothing")
	}
}
