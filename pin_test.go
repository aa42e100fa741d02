package e2ee

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/credseal/e2ee/internal/fixture"
)

// Thumbprints of the fixture keys, computed apart from Key.Thumbprint.
var (
	tpA = fixture.Thumbprint(fixture.Public(fixture.RSA2048A))
	tpB = fixture.Thumbprint(fixture.Public(fixture.RSA2048B))
	tpC = fixture.Thumbprint(fixture.Public(fixture.RSA2048C))
)

func TestKeyFetcherPinnedKeyAccepted(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		body []byte
		pins []string
		want string
	}{
		{"the only pin", jwkA, []string{tpA}, "kid-a"},
		{"one of two pins", jwkB, []string{tpA, tpB}, "kid-b"},
		// Unpinned, the set's first eligible key (kid-c) would be chosen.
		{"the pinned key of a set", fixture.Set(
			fixture.JWKMembers(fixture.Public(fixture.RSA2048C), map[string]any{"kid": "kid-c"}),
			fixture.JWKMembers(fixture.Public(fixture.RSA2048B), map[string]any{"kid": "kid-b"}),
		), []string{tpB}, "kid-b"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newKeyServer(serveJWK(tt.body)).fetcher(t, &FetcherConfig{Thumbprints: tt.pins})
			wantKey(t, f, tt.want)
		})
	}
}

func TestKeyFetcherUnpinnedKeyRefused(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name   string
		body   []byte
		reason string
	}{
		{"another key", jwkB, "key thumbprint " + tpB + " is not pinned"},
		{"another key under the pinned key's kid", fixture.JWK(fixture.Public(fixture.RSA2048B), map[string]any{"kid": "kid-a"}),
			"key thumbprint " + tpB + " is not pinned"},
		{"a set without the pinned key", fixture.Set(
			fixture.JWKMembers(fixture.Public(fixture.RSA2048B), map[string]any{"kid": "kid-b"}),
			fixture.JWKMembers(fixture.Public(fixture.RSA2048C), map[string]any{"kid": "kid-c"}),
		), `no eligible key in JWK Set: key 0 (kid "kid-b"): key thumbprint ` + tpB + ` is not pinned (FetcherConfig.Thumbprints); key 1 (kid "kid-c"): key thumbprint ` + tpC},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newKeyServer(serveJWK(tt.body)).fetcher(t, &FetcherConfig{Thumbprints: []string{tpA}})
			k, err := f.Key(context.Background())
			if k != nil || !errors.Is(err, ErrUnsuitableKey) || !strings.Contains(err.Error(), tt.reason) {
				t.Fatalf("Key() = %v, %v; want no key and ErrUnsuitableKey saying %q", k, err, tt.reason)
			}
			if st := f.Status(); st.KeyID != "" || !errors.Is(st.Err, ErrUnsuitableKey) {
				t.Errorf("Status() = %+v; want no key and the error", st)
			}
		})
	}
}

// TestKeyFetcherPinSurvivesSubstitution serves the pinned key, then another
// key under the same kid: the substitute is refused, the pinned key stays in
// use until it is stale, and the Logger says why.
func TestKeyFetcherPinSurvivesSubstitution(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		var logs logBuffer
		srv := newKeyServer(serveJWK(jwkA))
		f := srv.fetcher(t, &FetcherConfig{
			Thumbprints: []string{tpA},
			Logger:      slog.New(slog.NewTextHandler(&logs, nil)),
		})
		a := wantKey(t, f, "kid-a")

		impostor := fixture.JWK(fixture.Public(fixture.RSA2048B), map[string]any{"kid": "kid-a", "use": "enc"})
		srv.set(serveJWK(impostor))
		sleepUntil(start, time.Minute)
		if k, err := f.Refresh(context.Background()); k != nil || !errors.Is(err, ErrUnsuitableKey) || !strings.Contains(err.Error(), "not pinned") {
			t.Fatalf("Refresh() to a substitute under the pinned kid = %v, %v; want ErrUnsuitableKey, not pinned", k, err)
		}
		sleepUntil(start, 90*time.Minute) // expired: each fetch is refused, the pinned key served
		for range 3 {
			if k := mustKey(t, f); k != a {
				t.Fatalf("Key() = %v; want the pinned key", k)
			}
			settleFetcher(f)
			time.Sleep(time.Minute)
		}
		if !strings.Contains(logs.String(), "not pinned") || !strings.Contains(logs.String(), "key fetch failed") {
			t.Errorf("logs = %q; want the refused key logged as not pinned", logs.String())
		}
		sleepUntil(start, 26*time.Hour) // past expiry + MaxStale
		if _, err := f.Key(context.Background()); !errors.Is(err, ErrKeyStale) || !errors.Is(err, ErrUnsuitableKey) {
			t.Errorf("Key() past MaxStale = %v; want ErrKeyStale wrapping the pin's refusal", err)
		}
		if srv.count() < 4 {
			t.Errorf("requests = %d; want the substitute fetched and refused each time", srv.count())
		}
	})
}

// TestKeyFetcherPinnedRotation rotates to a second pinned key, as a
// pinned integration does once it has added the next key's thumbprint.
func TestKeyFetcherPinnedRotation(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		srv := newKeyServer(serveJWK(jwkA))
		f := srv.fetcher(t, &FetcherConfig{Thumbprints: []string{tpA, tpB}})
		wantKey(t, f, "kid-a")
		srv.set(serveJWK(jwkB))
		sleepUntil(start, time.Hour)
		wantKey(t, f, "kid-b")
		srv.set(serveJWK(jwkC))
		sleepUntil(start, 2*time.Hour)
		if k := mustKey(t, f); k.ID != "kid-b" { // kid-c is not pinned: the last good key is served
			t.Errorf("Key() after a rotation to an unpinned key = %s; want the last pinned one, kid-b", k.ID)
		}
	})
}

func TestParseKeyWithPin(t *testing.T) {
	t.Parallel()
	pubA, pubB := fixture.Public(fixture.RSA2048A), fixture.Public(fixture.RSA2048B)
	set := fixture.Set(
		fixture.JWKMembers(pubA, map[string]any{"kid": "a", "alg": "RSA-OAEP-256"}),
		fixture.JWKMembers(pubA, map[string]any{"kid": "b"}),
		fixture.JWKMembers(pubB, map[string]any{"kid": "c"}),
	)
	for _, tt := range []struct {
		name    string
		data    []byte
		pin     keyPin
		want    string // the kid chosen; "" for an error
		wantErr string
	}{
		{"kid", set, keyPin{kid: "b"}, "b", ""},
		{"unknown kid", set, keyPin{kid: "d"}, "", `pinned kid "d"`},
		{"kid of a bare JWK", fixture.JWK(pubA, map[string]any{"kid": "a"}), keyPin{kid: "b"}, "", `kid "a" is not the pinned kid "b"`},
		{"thumbprint", set, keyPin{thumbprints: []string{tpB}}, "c", ""},
		{"kid and thumbprint", set, keyPin{kid: "b", thumbprints: []string{tpA}}, "b", ""},
		{"kid and another key's thumbprint", set, keyPin{kid: "c", thumbprints: []string{tpA}}, "", "key 2 (kid \"c\"): key thumbprint " + tpB + " is not pinned"},
		{"no thumbprint listed", set, keyPin{thumbprints: []string{tpC}}, "", "is not pinned"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			k, err := parseKey(tt.data, tt.pin.check)
			if tt.want != "" {
				if err != nil || k.ID != tt.want {
					t.Fatalf("parseKey(%s) = %v, %v; want kid %s", tt.name, k, err, tt.want)
				}
				return
			}
			if !errors.Is(err, ErrUnsuitableKey) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("parseKey(%s) = %v, %v; want ErrUnsuitableKey saying %q", tt.name, k, err, tt.wantErr)
			}
		})
	}
}
