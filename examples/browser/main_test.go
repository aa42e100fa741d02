package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/credseal/e2ee"
	"github.com/credseal/e2ee/powens"
	"github.com/credseal/e2ee/web"
)

// startDemo serves a new demo backend on loopback for the test.
func startDemo(t testing.TB) (*demo, *httptest.Server) {
	t.Helper()
	d, err := newDemo()
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

func post(t *testing.T, url, contentType string, body []byte) (int, string) {
	t.Helper()
	resp, err := http.Post(url, contentType, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	reply, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(reply)
}

func TestRunPrintsItsLoopbackURL(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	r, w := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, "127.0.0.1:0", w)
		w.Close()
	}()
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	go io.Copy(io.Discard, r)
	m := regexp.MustCompile(`^browser demo: open (http://127\.0\.0\.1:\d+/) `).FindStringSubmatch(line)
	if m == nil {
		cancel()
		t.Fatalf("run printed %q; want its loopback URL", line)
	}
	resp, err := http.Get(m[1])
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Contains(page, []byte(`integrity="`+strings.ReplaceAll(web.Integrity, "+", "&#43;")+`"`)) {
		t.Errorf("GET %s = %s; want the login page, loading the module with its integrity", m[1], resp.Status)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run = %v; want nil once its context ends", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return once its context ended")
	}
}

func TestRunRefusesAnAddressNotOnLoopback(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "192.0.2.1:8080"} {
		if err := run(context.Background(), addr, io.Discard); err == nil || !strings.Contains(err.Error(), "loopback") {
			t.Errorf("run(%q) = %v; want a loopback error", addr, err)
		}
	}
}

// TestBackendRelaysOnlyEncryptedBodies is the backend's half without a
// browser: a body encrypted with the key it serves is forwarded byte for
// byte; a cleartext, form or unparsable one is refused with 400 and nothing
// is forwarded.
func TestBackendRelaysOnlyEncryptedBodies(t *testing.T) {
	d, srv := startDemo(t)
	url := srv.URL + "/2.0/users/me/connections"
	cleartext := []byte(`{"id_connector": 40, "login": "john.doe", "password": "hunter2"}`)

	for _, tt := range []struct {
		name, contentType string
		body              []byte
		reason            string
	}{
		{"cleartext", "application/json", cleartext, "designated value in cleartext: /login, /password"},
		{"form", "application/x-www-form-urlencoded", []byte("login=john.doe&password=hunter2"), "request refused"},
		{"not JSON", "application/json", []byte(`{"login": "john.doe"`), "request refused"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			status, reply := post(t, url, tt.contentType, tt.body)
			if status != http.StatusBadRequest || !strings.Contains(reply, tt.reason) || strings.Contains(reply, "hunter2") {
				t.Errorf("POST %s body = %d %q; want 400 %q, without the password", tt.name, status, reply, tt.reason)
			}
			if n := d.API.APIRequests(); n != 0 {
				t.Errorf("the API received %d requests; want 0", n)
			}
		})
	}

	t.Run("encrypted with the key it serves", func(t *testing.T) {
		keys, err := e2ee.NewKeyFetcher(srv.URL+"/e2ee/publickey", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer keys.Close()
		p, err := e2ee.NewPayload(e2ee.NewEncryptor(keys), powens.Fields(powens.ConnectionCreate)...)
		if err != nil {
			t.Fatal(err)
		}
		body, err := p.Encrypt(context.Background(), cleartext)
		if err != nil {
			t.Fatal(err)
		}
		if status, reply := post(t, url, "application/json", body); status != http.StatusOK {
			t.Fatalf("POST encrypted body = %d %q; want 200", status, reply)
		}
		got, ok := d.API.LastRequest()
		if !ok || !bytes.Equal(got.Body, body) || got.Decrypted["/login"] != "john.doe" || got.Decrypted["/password"] != "hunter2" {
			t.Errorf("the API received %q (decrypted %v); want the encrypted body byte for byte", got.Body, got.Decrypted)
		}
	})
}

func TestPageCannotSubmitWithoutTheModule(t *testing.T) {
	_, srv := startDemo(t)
	resp, err := http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`<form id="login" onsubmit="return false">`,                 // no action: no native submission
		`<button id="submit" type="submit" disabled>`,               // enabled by the module only
		`"integrity":{"/static/` + web.Name + `":"` + web.Integrity, // the import map
	} {
		if !bytes.Contains(page, []byte(want)) {
			t.Errorf("the page lacks %s", want)
		}
	}
	if regexp.MustCompile(`<input[^>]*\bname=`).Match(page) {
		t.Errorf("a field of the page has a name: a native submission would carry it")
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "form-action 'none'") {
		t.Errorf("Content-Security-Policy %q; want form-action 'none'", csp)
	}
}
