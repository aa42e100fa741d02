package demo_test

import (
	"net/http/httptest"
	"testing"

	"github.com/credseal/e2ee/examples/browser/internal/demo"
)

// startDemo serves a new backend on loopback for the test.
func startDemo(t testing.TB) (*demo.Backend, *httptest.Server) {
	t.Helper()
	d, err := demo.NewBackend()
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(d)
	t.Cleanup(func() {
		srv.Close()
		d.Close()
	})
	return d, srv
}
