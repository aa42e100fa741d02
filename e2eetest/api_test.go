package e2eetest

import (
	"bytes"
	"cmp"
	"errors"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/credseal/e2ee"
	"github.com/credseal/e2ee/internal/fixture"
)

// connectionBody is a connection-creation body in cleartext.
const connectionBody = `{"id_connector":40,"login":"john.doe","password":"hunter2","website":"par"}`

func TestEndToEnd(t *testing.T) {
	srv := newServer(t)
	client := newClient(t, srv, nil)

	for i, tt := range []struct {
		name, path, body string
		want             map[string]string
	}{
		{"connection creation", "/2.0/users/me/connections", connectionBody,
			map[string]string{"/login": "john.doe", "/password": "hunter2", "/website": "par"}},
		{"connection update", "/2.0/users/me/connections/12", `{"otp":"123456","resume":true}`,
			map[string]string{"/otp": "123456"}},
		{"payment validation", "/2.0/payments/p-1", `{"fields":{"website":"par","code":"0000"},"validate_mechanism":"webview"}`,
			map[string]string{"/fields/website": "par", "/fields/code": "0000"}},
		{"not an encrypted request", "/2.0/users/me/accounts", `{"name":"clear"}`, map[string]string{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, _ := do(t, client, http.MethodPost, "https://acme.biapi.pro"+tt.path, tt.body,
				http.Header{"Content-Type": {"application/json"}})
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d; want 200", resp.StatusCode)
			}
			r, _ := srv.LastRequest()
			if r.Method != http.MethodPost || r.Host != "acme.biapi.pro" || r.Path != tt.path {
				t.Errorf("recorded %s %s%s; want POST acme.biapi.pro%s", r.Method, r.Host, r.Path, tt.path)
			}
			if r.Header.Get("Content-Type") != "application/json" {
				t.Errorf("recorded Content-Type %q", r.Header.Get("Content-Type"))
			}
			if r.Opened != tt.body || r.Err != nil {
				t.Errorf("Opened = %s, Err = %v; want the cleartext body %s", r.Opened, r.Err, tt.body)
			}
			if !maps.Equal(r.Decrypted, tt.want) {
				t.Errorf("Decrypted = %v; want %v", r.Decrypted, tt.want)
			}
			for ptr, plain := range tt.want {
				if bytes.Contains(r.Body, []byte(`"`+plain+`"`)) {
					t.Errorf("the body sent has %s in cleartext: %s", ptr, r.Body)
				}
				if r.KeyIDs[ptr] != srv.Key().ID {
					t.Errorf("KeyIDs[%s] = %q; want the current kid %s", ptr, r.KeyIDs[ptr], srv.Key().ID)
				}
			}
			if len(r.KeyIDs) != len(tt.want) {
				t.Errorf("KeyIDs = %v; want one per encrypted value", r.KeyIDs)
			}
			if srv.KeyRequests() != 1 || srv.APIRequests() != i+1 {
				t.Errorf("KeyRequests() = %d, APIRequests() = %d; want 1 (cached key), %d",
					srv.KeyRequests(), srv.APIRequests(), i+1)
			}
		})
	}
}

func TestCounters(t *testing.T) {
	srv := newServer(t)
	if _, ok := srv.LastRequest(); ok || srv.KeyRequests() != 0 || srv.APIRequests() != 0 || len(srv.Requests()) != 0 {
		t.Fatalf("a new server has requests")
	}
	c := srv.Client()
	do(t, c, http.MethodGet, srv.URL, "", nil)
	do(t, c, http.MethodGet, srv.URL+"/2.0/publickey", "", nil)
	do(t, c, http.MethodHead, "https://acme.biapi.pro/2.0/publickey", "", nil)
	do(t, c, http.MethodPost, srv.URL+"/2.0/publickey", `{"a":"b"}`, nil) // not a key request
	do(t, c, http.MethodGet, "https://acme.biapi.pro/2.0/users/me", "", nil)

	if got := srv.KeyRequests(); got != 3 {
		t.Errorf("KeyRequests() = %d; want 3", got)
	}
	if got := srv.APIRequests(); got != 2 {
		t.Errorf("APIRequests() = %d; want 2", got)
	}
	reqs := srv.Requests()
	if len(reqs) != 2 || reqs[0].Method != "POST" || reqs[0].Path != "/2.0/publickey" ||
		reqs[1].Method != "GET" || reqs[1].Path != "/2.0/users/me" || len(reqs[1].Body) != 0 || reqs[1].Err != nil {
		t.Fatalf("Requests() = %+v; want the POST then the GET", reqs)
	}

	// The results are copies.
	reqs[0].Body[0] = 'X'
	reqs[0].Header.Set("X-Changed", "1")
	reqs[0].KeyIDs["/x"] = "y"
	last, _ := srv.LastRequest()
	last.Header.Set("X-Changed", "1")
	if again := srv.Requests(); again[0].Body[0] != '{' || again[0].Header.Get("X-Changed") != "" ||
		len(again[0].KeyIDs) != 0 || again[1].Header.Get("X-Changed") != "" {
		t.Errorf("changing the result of Requests or LastRequest changed the record")
	}
}

func TestStandIn(t *testing.T) {
	unknownKey := fixtureKey(fixture.RSA2048C)
	for _, tt := range []struct {
		name       string
		setup      func(*Server)
		method     string
		path       string // "" for a connection creation
		body       func(t *testing.T, s *Server) string
		wantStatus int
		wantBody   string // "" for any
		wantType   string
		check      func(t *testing.T, r Request)
	}{
		{
			name: "default answer", method: "POST",
			body:       func(*testing.T, *Server) string { return `{"id_connector":40}` },
			wantStatus: 200, wantBody: "{}", wantType: "application/json",
			check: func(t *testing.T, r Request) {
				if r.Err != nil || r.Opened != `{"id_connector":40}` || len(r.Decrypted) != 0 || r.Cleartext != nil {
					t.Errorf("recorded Err %v, Opened %s, Decrypted %v, Cleartext %q", r.Err, r.Opened, r.Decrypted, r.Cleartext)
				}
			},
		},
		{
			name: "cleartext refused in strict mode", method: "POST",
			body: func(t *testing.T, s *Server) string {
				return `{"id_connector":40,"login":"` + encrypt(t, s.Key(), "john") + `","password":"hunter2","pin":1234,"otp":null}`
			},
			wantStatus: 400, wantType: "application/json",
			check: func(t *testing.T, r Request) {
				if !slices.Equal(r.Cleartext, []string{"/password", "/pin"}) {
					t.Errorf("Cleartext = %q; want /password and /pin", r.Cleartext)
				}
				if !errors.Is(r.Err, e2ee.ErrCleartext) || strings.Contains(r.Err.Error(), "hunter2") ||
					!strings.Contains(r.Err.Error(), "e2ee: designated value in cleartext: /*, /* (a number)") {
					t.Errorf("recorded Err %q; want ErrCleartext with two values, names hidden", r.Err)
				}
				if r.Decrypted["/login"] != "john" {
					t.Errorf("Decrypted = %v; want /login decrypted all the same", r.Decrypted)
				}
			},
		},
		{
			name: "cleartext in a payment validation's fields", method: "POST", path: "/2.0/payments/p1",
			body:       func(*testing.T, *Server) string { return `{"validated":true,"fields":{"website":"hunter2"}}` },
			wantStatus: 400,
			check: func(t *testing.T, r Request) {
				if !slices.Equal(r.Cleartext, []string{"/fields/website"}) {
					t.Errorf("Cleartext = %q; want /fields/website", r.Cleartext)
				}
			},
		},
		{
			name: "cleartext under a path in capitals", method: "PUT", path: "/2.0/USERS/me/Connections/7/",
			body:       func(*testing.T, *Server) string { return `{"otp":"hunter2"}` },
			wantStatus: 400,
		},
		{
			name: "cleartext taken with strict mode off", setup: func(s *Server) { s.Strict(false) }, method: "POST",
			body:       func(*testing.T, *Server) string { return `{"id_connector":40,"password":"hunter2"}` },
			wantStatus: 200, wantBody: "{}",
			check: func(t *testing.T, r Request) {
				if r.Err != nil || !slices.Equal(r.Cleartext, []string{"/password"}) {
					t.Errorf("recorded Err %v, Cleartext %q; want no error, /password listed", r.Err, r.Cleartext)
				}
			},
		},
		{
			name: "cleartext taken outside the encrypted endpoints", method: "POST", path: "/2.0/users/me/accounts",
			body:       func(*testing.T, *Server) string { return `{"password":"hunter2"}` },
			wantStatus: 200, wantBody: "{}",
			check: func(t *testing.T, r Request) {
				if r.Err != nil || r.Cleartext != nil {
					t.Errorf("recorded Err %v, Cleartext %q; want neither", r.Err, r.Cleartext)
				}
			},
		},
		{
			name: "Respond", setup: func(s *Server) { s.Respond(201, `{"id":42}`) }, method: "POST",
			body:       func(*testing.T, *Server) string { return `{}` },
			wantStatus: 201, wantBody: `{"id":42}`, wantType: "application/json",
		},
		{
			name: "Respond with an outage", setup: func(s *Server) { s.Respond(503, "down") }, method: "GET",
			body:       func(*testing.T, *Server) string { return "" },
			wantStatus: 503, wantBody: "down", wantType: "text/plain; charset=utf-8",
		},
		{
			name: "unknown kid", method: "POST",
			body: func(t *testing.T, s *Server) string {
				return `{"login":"` + encrypt(t, s.Key(), "john") + `","password":"` + encrypt(t, unknownKey, "hunter2") + `"}`
			},
			wantStatus: 400, wantType: "application/json",
			check: func(t *testing.T, r Request) {
				if !errors.Is(r.Err, ErrUnknownKey) || strings.Contains(r.Err.Error(), "hunter2") ||
					!strings.Contains(r.Err.Error(), `"/password"`) {
					t.Errorf("recorded Err %v; want ErrUnknownKey naming /password", r.Err)
				}
				if r.Decrypted["/login"] != "john" || len(r.Decrypted) != 1 {
					t.Errorf("Decrypted = %v; want /login only", r.Decrypted)
				}
				if r.KeyIDs["/password"] != unknownKey.ID || len(r.KeyIDs) != 2 {
					t.Errorf("KeyIDs = %v; want both, /password's %s", r.KeyIDs, unknownKey.ID)
				}
				if !strings.HasPrefix(r.Opened, `{"login":"john","password":"eyJ`) {
					t.Errorf("Opened = %s; want the undecryptable JWE left as it is", r.Opened)
				}
			},
		},
		{
			name: "form on an encrypted endpoint refused in strict mode", method: "POST",
			body:       func(*testing.T, *Server) string { return "login=john&password=hunter2" },
			wantStatus: 400, wantType: "application/json",
			check: func(t *testing.T, r Request) {
				if r.Err == nil || strings.Contains(r.Err.Error(), "hunter2") || r.Opened != "" ||
					string(r.Body) != "login=john&password=hunter2" {
					t.Errorf("recorded Err %v, Opened %q, Body %q", r.Err, r.Opened, r.Body)
				}
			},
		},
		{
			name: "form taken with strict mode off", setup: func(s *Server) { s.Strict(false) }, method: "POST",
			body:       func(*testing.T, *Server) string { return "login=john&password=hunter2" },
			wantStatus: 200, wantBody: "{}",
			check: func(t *testing.T, r Request) {
				if r.Err == nil || !strings.Contains(r.Err.Error(), "not valid JSON") {
					t.Errorf("recorded Err %v; want the body recorded as not JSON", r.Err)
				}
			},
		},
		{
			name: "form taken outside the encrypted endpoints", method: "POST", path: "/2.0/users/me/accounts",
			body:       func(*testing.T, *Server) string { return "login=john&password=hunter2" },
			wantStatus: 200, wantBody: "{}",
		},
		{
			name: "too large", method: "POST",
			body:       func(*testing.T, *Server) string { return `"` + strings.Repeat("a", maxBodyBytes) + `"` },
			wantStatus: 413, wantType: "application/json",
			check: func(t *testing.T, r Request) {
				if r.Err == nil || len(r.Body) != maxBodyBytes {
					t.Errorf("recorded Err %v, %d bytes; want an error and %d bytes", r.Err, len(r.Body), maxBodyBytes)
				}
			},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t)
			if tt.setup != nil {
				tt.setup(srv)
			}
			resp, body := do(t, srv.Client(), tt.method, "https://acme.biapi.pro"+cmp.Or(tt.path, "/2.0/users/me/connections"),
				tt.body(t, srv), nil)
			if resp.StatusCode != tt.wantStatus || (tt.wantBody != "" && body != tt.wantBody) {
				t.Errorf("%s = %d %q; want %d %q", tt.method, resp.StatusCode, body, tt.wantStatus, tt.wantBody)
			}
			if tt.wantType != "" && resp.Header.Get("Content-Type") != tt.wantType {
				t.Errorf("Content-Type = %q; want %q", resp.Header.Get("Content-Type"), tt.wantType)
			}
			if strings.Contains(body, "hunter2") {
				t.Errorf("the answer %q contains a plaintext", body)
			}
			if srv.APIRequests() != 1 || srv.KeyRequests() != 0 {
				t.Errorf("APIRequests() = %d, KeyRequests() = %d; want 1, 0", srv.APIRequests(), srv.KeyRequests())
			}
			if r, ok := srv.LastRequest(); ok && tt.check != nil {
				tt.check(t, r)
			}
		})
	}
}

func TestKeyRejection(t *testing.T) {
	const rejection = `{"code":"invalidKid"}`
	for _, tt := range []struct {
		name        string
		reject      bool
		keyRejected func(*http.Response) bool
		wantStatus  int
		wantOld     int // API requests after the rotation made with the old key
		wantNew     int // and with the new one
		wantKeyReqs int
	}{
		{"refreshed and resent", true, func(r *http.Response) bool { return r.StatusCode == http.StatusConflict },
			http.StatusOK, 1, 1, 2},
		{"no KeyRejected: the caller gets the rejection", true, nil,
			http.StatusConflict, 1, 0, 1},
		{"retired keys accepted by default", false, func(r *http.Response) bool { return r.StatusCode == http.StatusConflict },
			http.StatusOK, 1, 0, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t)
			client := newClient(t, srv, tt.keyRejected)
			post := func() (*http.Response, string) {
				return do(t, client, http.MethodPost, "https://acme.biapi.pro/2.0/users/me/connections", connectionBody, nil)
			}

			if resp, _ := post(); resp.StatusCode != http.StatusOK { // caches the first key
				t.Fatalf("first POST: status %d", resp.StatusCode)
			}
			old := srv.Key().ID
			srv.Rotate()
			if tt.reject {
				srv.RejectRetiredKeys(http.StatusConflict, rejection)
			}
			resp, body := post()
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("POST after Rotate: status %d %s; want %d", resp.StatusCode, body, tt.wantStatus)
			}
			if tt.wantStatus == http.StatusConflict && body != rejection {
				t.Errorf("POST after Rotate: body %s; want %s", body, rejection)
			}
			var gotOld, gotNew int
			for _, r := range srv.Requests()[1:] {
				for _, kid := range r.KeyIDs {
					if kid != r.KeyIDs["/password"] {
						t.Errorf("one request with two kids: %v", r.KeyIDs)
					}
				}
				switch r.KeyIDs["/password"] {
				case old:
					gotOld++
				case srv.Key().ID:
					gotNew++
				}
				if r.Opened != connectionBody {
					t.Errorf("Opened = %s; want %s", r.Opened, connectionBody)
				}
			}
			if gotOld != tt.wantOld || gotNew != tt.wantNew {
				t.Errorf("after Rotate, %d requests with the old key and %d with the new; want %d and %d",
					gotOld, gotNew, tt.wantOld, tt.wantNew)
			}
			if got := srv.KeyRequests(); got != tt.wantKeyReqs {
				t.Errorf("KeyRequests() = %d; want %d", got, tt.wantKeyReqs)
			}

			srv.RejectRetiredKeys(0, "") // off: the old key is accepted again
			jwe := encrypt(t, &e2ee.Key{ID: old, PublicKey: fixture.Public(fixture.RSA2048A)}, "x")
			if resp, _ := do(t, srv.Client(), http.MethodPost, srv.URL+"/y", `{"p":"`+jwe+`"}`, nil); resp.StatusCode != http.StatusOK {
				t.Errorf("after RejectRetiredKeys(0, \"\"), a JWE of the old key: status %d; want 200", resp.StatusCode)
			}
		})
	}
}

func TestRejectRetiredKeysUnknownKid(t *testing.T) {
	srv := newServer(t)
	srv.RejectRetiredKeys(http.StatusUnauthorized, "retired")
	body := `{"p":"` + encrypt(t, fixtureKey(fixture.RSA4096), "x") + `"}`
	if resp, got := do(t, srv.Client(), http.MethodPost, srv.URL+"/y", body, nil); resp.StatusCode != 401 || got != "retired" {
		t.Errorf("a JWE of a key never served: %d %q; want the rejection 401 retired", resp.StatusCode, got)
	}
	body = `{"p":"` + encrypt(t, srv.Key(), "x") + `","clear":"y"}`
	if resp, _ := do(t, srv.Client(), http.MethodPost, srv.URL+"/y", body, nil); resp.StatusCode != 200 {
		t.Errorf("a JWE of the current key: %d; want 200", resp.StatusCode)
	}
}

// TestHandle scripts a connection in two steps, each answered by its own
// handler, and checks that the stand-in's checks come first.
func TestHandle(t *testing.T) {
	srv := newServer(t)
	var bodies []string
	srv.Handle("POST /2.0/users/{user}/connections", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		bodies = append(bodies, string(b))
		w.WriteHeader(http.StatusAccepted)
		io.WriteString(w, `{"id":7,"fields":[{"name":"otp"}]}`)
	}))
	srv.Handle("POST /2.0/users/{user}/connections/{id}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"id":`+r.PathValue("id")+`,"state":null}`)
	}))

	create := `{"id_connector":40,"password":"` + encrypt(t, srv.Key(), "hunter2") + `"}`
	resp, body := do(t, srv.Client(), "POST", "https://acme.biapi.pro/2.0/users/me/connections", create, nil)
	if resp.StatusCode != http.StatusAccepted || body != `{"id":7,"fields":[{"name":"otp"}]}` {
		t.Errorf("creation = %d %s; want the first handler's 202", resp.StatusCode, body)
	}
	if len(bodies) != 1 || bodies[0] != create {
		t.Errorf("the handler read %q; want the body as received", bodies)
	}
	resp, body = do(t, srv.Client(), "POST", "https://acme.biapi.pro/2.0/users/me/connections/7",
		`{"otp":"`+encrypt(t, srv.Key(), "123456")+`"}`, nil)
	if resp.StatusCode != 200 || body != `{"id":7,"state":null}` {
		t.Errorf("OTP step = %d %s; want the second handler's answer", resp.StatusCode, body)
	}
	if r, _ := srv.LastRequest(); r.Decrypted["/otp"] != "123456" {
		t.Errorf("Decrypted = %v; want the OTP", r.Decrypted)
	}

	// Cleartext is refused before any handler; other paths get Respond's answer.
	resp, _ = do(t, srv.Client(), "POST", "https://acme.biapi.pro/2.0/users/me/connections", `{"password":"hunter2"}`, nil)
	if resp.StatusCode != http.StatusBadRequest || len(bodies) != 1 {
		t.Errorf("cleartext = %d, handler called %d times; want 400 and the handler not called", resp.StatusCode, len(bodies))
	}
	resp, body = do(t, srv.Client(), "GET", "https://acme.biapi.pro/2.0/users/me/accounts", "", nil)
	if resp.StatusCode != 200 || body != "{}" {
		t.Errorf("another path = %d %s; want the default 200 {}", resp.StatusCode, body)
	}
	if srv.APIRequests() != 4 {
		t.Errorf("APIRequests() = %d; want 4, handled or not", srv.APIRequests())
	}
}
