package e2ee

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestNewKeyFetcherConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  FetcherConfig
		want string
	}{
		{"negative Timeout", FetcherConfig{Timeout: -time.Second}, "Timeout is negative"},
		{"negative MaxBodyBytes", FetcherConfig{MaxBodyBytes: -1}, "MaxBodyBytes is negative"},
		{"negative MaxStale", FetcherConfig{MaxStale: -time.Second}, "MaxStale is negative"},
		{"negative HedgeDelay", FetcherConfig{HedgeDelay: -time.Second}, "HedgeDelay is negative"},
		{"MinTTL above MaxTTL", FetcherConfig{MinTTL: 2 * time.Hour, MaxTTL: time.Hour}, "MinTTL (2h0m0s) exceeds MaxTTL (1h0m0s)"},
		{"MinTTL above the default MaxTTL", FetcherConfig{MinTTL: 48 * time.Hour}, "exceeds MaxTTL"},
		{"thumbprint too short", FetcherConfig{Thumbprints: []string{"KHSzzFCf7zxjrtBpmuC_FctmYfnTkc_BNwJkJqcIII"}},
			`Thumbprints[0]: "KHSzzFCf7zxjrtBpmuC_FctmYfnTkc_BNwJkJqcIII" is not a SHA-256 thumbprint`},
		{"thumbprint in standard base64", FetcherConfig{Thumbprints: []string{fixtureThumbprint, "KHSzzFCf7zxjrtBpmuC/FctmYfnTkc+BNwJkJqcIIIc"}},
			"Thumbprints[1]"},
		{"thumbprint padded", FetcherConfig{Thumbprints: []string{"KHSzzFCf7zxjrtBpmuC_FctmYfnTkc_BNwJkJqcIII="}}, "not a SHA-256 thumbprint"},
		{"thumbprint in hex", FetcherConfig{Thumbprints: []string{strings.Repeat("ab", 32)}}, "want 43 base64url characters"},
		{"thumbprint with non-canonical last character", FetcherConfig{Thumbprints: []string{"KHSzzFCf7zxjrtBpmuC_FctmYfnTkc_BNwJkJqcIIId"}}, "not base64url"},
		{"empty thumbprint", FetcherConfig{Thumbprints: []string{""}}, "not a SHA-256 thumbprint"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := NewKeyFetcher("https://keys.example/key", &tt.cfg)
			if err == nil {
				f.Close()
				t.Fatalf("NewKeyFetcher(%+v) = nil error; want %q", tt.cfg, tt.want)
			}
			wantError(t, "NewKeyFetcher", err, nil, tt.want)
		})
	}
}

// fixtureThumbprint is the RFC 7638 thumbprint of testdata/provider-key.json.
const fixtureThumbprint = "KHSzzFCf7zxjrtBpmuC_FctmYfnTkc_BNwJkJqcIIIc"

func TestFetcherConfigDefaults(t *testing.T) {
	t.Parallel()
	c, pin, err := (*FetcherConfig)(nil).resolve()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []struct {
		name      string
		got, want any
	}{
		{"Timeout", c.Timeout, 10 * time.Second},
		{"MaxBodyBytes", c.MaxBodyBytes, int64(256 << 10)},
		{"DefaultTTL", c.DefaultTTL, time.Hour},
		{"MinTTL", c.MinTTL, time.Minute},
		{"MaxTTL", c.MaxTTL, 24 * time.Hour},
		{"MaxStale", c.MaxStale, 24 * time.Hour},
		{"MinRefreshInterval", c.MinRefreshInterval, 30 * time.Second},
		{"HedgeDelay", c.HedgeDelay, 2 * time.Second},
	} {
		if d.got != d.want {
			t.Errorf("default %s = %v; want %v", d.name, d.got, d.want)
		}
	}
	if pin.kid != "" || pin.thumbprints != nil {
		t.Errorf("default pin = %+v; want none", pin)
	}

	// The fetcher keeps copies: changing the caller's config afterwards
	// changes nothing.
	header := http.Header{"Authorization": {"Bearer a"}}
	tps := []string{fixtureThumbprint}
	cfg := &FetcherConfig{Header: header, Thumbprints: tps, KeyID: "k", Timeout: time.Second}
	f, err := NewKeyFetcher("https://keys.example/key", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	header.Set("Authorization", "Bearer b")
	tps[0] = "changed"
	cfg.Timeout = time.Hour
	if got := f.cfg.Header.Get("Authorization"); got != "Bearer a" {
		t.Errorf("Header after the caller changed it = %q; want the copy, %q", got, "Bearer a")
	}
	if f.pin.thumbprints[0] != fixtureThumbprint || f.pin.kid != "k" || f.cfg.Timeout != time.Second {
		t.Errorf("pin and Timeout after the caller changed them = %+v, %v; want the copies", f.pin, f.cfg.Timeout)
	}
}
