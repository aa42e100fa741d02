package e2ee

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestErrorHandler checks the one mapping of refusals to answers: 503 when
// the key could not be had, 400 for any other refusal, with its message,
// 502 for any other error, with no detail.
func TestErrorHandler(t *testing.T) {
	for _, tt := range []struct {
		name   string
		err    error
		status int
		body   string
	}{
		{"key unavailable", &notSentError{err: fmt.Errorf("%w: key endpoint down", ErrKeyUnavailable)}, 503, "the API's encryption key is unavailable"},
		{"cleartext", refused(&Route{Pattern: "/x"}, fmt.Errorf("%w: /*", ErrCleartext)), 400, `request refused: e2ee: designated value in cleartext: /* (request not sent: route "/x")`},
		{"another refusal", fmt.Errorf("powens: relay: a protocol upgrade: %w", ErrNotSent), 400, "request refused: powens: relay: a protocol upgrade"},
		{"the upstream's error", errors.New("dial tcp 10.0.0.7:443: connection refused"), 502, "bad gateway"},
		{"a canceled request", context.Canceled, 502, "bad gateway"},
		{"key unavailable, not refused", ErrKeyUnavailable, 502, "bad gateway"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			ErrorHandler(rec, httptest.NewRequest("POST", "/", nil), tt.err)
			if rec.Code != tt.status || !strings.Contains(rec.Body.String(), tt.body) {
				t.Errorf("ErrorHandler(%v) = %d %q; want %d %q", tt.err, rec.Code, rec.Body, tt.status, tt.body)
			}
			if tt.status == 502 && strings.Contains(rec.Body.String(), "10.0.0.7") {
				t.Errorf("ErrorHandler(%v) gives the upstream's error away: %q", tt.err, rec.Body)
			}
			if h := rec.Header(); h.Get("Content-Type") != "text/plain; charset=utf-8" || h.Get("Cache-Control") != "no-store" {
				t.Errorf("headers %v; want text/plain, no-store", h)
			}
			if (tt.status == 503) != (rec.Header().Get("Retry-After") != "") {
				t.Errorf("Retry-After %q with status %d; want it with 503 only", rec.Header().Get("Retry-After"), tt.status)
			}
		})
	}
}
