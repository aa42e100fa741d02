package httpcache

import (
	"net/http"
	"testing"
	"time"
)

// headers builds an http.Header from name, value pairs.
func headers(pairs ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(pairs); i += 2 {
		h.Add(pairs[i], pairs[i+1])
	}
	return h
}

func TestFreshness(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	date := now.Format(http.TimeFormat)
	in := func(d time.Duration) string { return now.Add(d).Format(http.TimeFormat) }
	tests := []struct {
		name   string
		header http.Header
		want   time.Duration
		ok     bool
	}{
		{"no caching headers", headers("Date", date), 0, false},
		{"Cache-Control without max-age", headers("Cache-Control", "public"), 0, false},
		{"max-age", headers("Cache-Control", "max-age=600"), 10 * time.Minute, true},
		{"max-age among directives, quoted, any case", headers("Cache-Control", `public, MAX-AGE="300", must-revalidate`), 5 * time.Minute, true},
		{"max-age in a second Cache-Control line", headers("Cache-Control", "public", "Cache-Control", "max-age=60"), time.Minute, true},
		{"the first max-age counts", headers("Cache-Control", "max-age=60, max-age=600"), time.Minute, true},
		{"max-age less Age", headers("Cache-Control", "max-age=600", "Age", "100"), 500 * time.Second, true},
		{"Age over max-age", headers("Cache-Control", "max-age=600", "Age", "1000"), -400 * time.Second, true},
		{"max-age overflowing: capped at 2^31 s", headers("Cache-Control", "max-age=99999999999999999999"), (1 << 31) * time.Second, true},
		{"invalid max-age: stale", headers("Cache-Control", "max-age=soon"), 0, true},
		{"negative max-age: stale", headers("Cache-Control", "max-age=-1"), 0, true},
		{"invalid Age ignored", headers("Cache-Control", "max-age=600", "Age", "-5"), 10 * time.Minute, true},
		{"Expires less Date", headers("Expires", in(2*time.Hour), "Date", date), 2 * time.Hour, true},
		{"Expires less Date and Age", headers("Expires", in(2*time.Hour), "Date", date, "Age", "600"), 110 * time.Minute, true},
		{"Expires, Date from a skewed server clock", headers("Expires", in(5*time.Hour), "Date", in(3*time.Hour)), 2 * time.Hour, true},
		{"Expires without Date: from now", headers("Expires", in(3*time.Hour)), 3 * time.Hour, true},
		{"Expires in the past", headers("Expires", in(-time.Hour), "Date", date), -time.Hour, true},
		{"invalid Expires: already expired", headers("Expires", "0", "Date", date), 0, true},
		{"max-age beats Expires", headers("Cache-Control", "max-age=600", "Expires", in(2*time.Hour), "Date", date), 10 * time.Minute, true},
		{"no-store", headers("Cache-Control", "no-store"), 0, true},
		{"no-cache", headers("Cache-Control", "no-cache"), 0, true},
		{"no-cache beats max-age", headers("Cache-Control", "max-age=600, no-cache"), 0, true},
		{"no-store beats Expires", headers("Cache-Control", "No-Store", "Expires", in(2*time.Hour), "Date", date), 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := Freshness(tt.header, now)
			if got != tt.want || ok != tt.ok {
				t.Errorf("Freshness(%v) = %v, %v; want %v, %v", tt.header, got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestDeltaSeconds(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"0", 0, true},
		{"600", 10 * time.Minute, true},
		{` "30" `, 30 * time.Second, true},
		{"2147483648", (1 << 31) * time.Second, true},
		{"2147483649", (1 << 31) * time.Second, true},
		{"99999999999999999999999", (1 << 31) * time.Second, true},
		{"", 0, false},
		{"-1", 0, false},
		{"+1", 0, false},
		{"1.5", 0, false},
		{"1e3", 0, false},
		{"soon", 0, false},
	} {
		if got, ok := deltaSeconds(tt.in); got != tt.want || ok != tt.ok {
			t.Errorf("deltaSeconds(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	for _, tt := range []struct {
		value string
		want  time.Duration
	}{
		{"", 0},
		{"30", 30 * time.Second},
		{now.Add(20 * time.Second).Format(http.TimeFormat), 20 * time.Second},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0},
		{"later", 0},
		{"-5", 0},
	} {
		if got := RetryAfter(headers("Retry-After", tt.value), now); got != tt.want {
			t.Errorf("RetryAfter(%q) = %v; want %v", tt.value, got, tt.want)
		}
	}
}
