package e2eetest_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/credseal/e2ee"
	"github.com/credseal/e2ee/e2eetest"
	"github.com/credseal/e2ee/powens"
)

// A Server serves its public key at its URL; whatever is encrypted with that
// key, the test can decrypt.
func ExampleNewServer() {
	srv := e2eetest.NewServer()
	defer srv.Close()

	keys, err := e2ee.NewKeyFetcher(srv.URL, &e2ee.FetcherConfig{HTTPClient: srv.Client()})
	if err != nil {
		log.Fatal(err)
	}
	defer keys.Close()
	jwe, err := e2ee.NewEncryptor(keys).EncryptString(context.Background(), "hunter2")
	if err != nil {
		log.Fatal(err)
	}

	plaintext, err := srv.Decrypt(jwe)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(plaintext)
	fmt.Println(srv.KeyRequests(), "key request")
	// Output:
	// hunter2
	// 1 key request
}

// The server stands in for the API: code that names the API's real URLs
// reaches it through the server's transport, and the test reads what the API
// would have decrypted.
func ExampleServer_LastRequest() {
	srv := e2eetest.NewServer()
	defer srv.Close()

	// The integrator's code, unchanged but for the base client.
	client, err := powens.NewClient("acme", &powens.Options{HTTPClient: srv.Client()})
	if err != nil {
		log.Fatal(err)
	}
	resp, err := client.Post("https://acme.biapi.pro/2.0/users/me/connections", "application/json",
		strings.NewReader(`{"id_connector":40,"login":"john.doe","password":"hunter2"}`))
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()

	// The test's assertions.
	r, _ := srv.LastRequest()
	fmt.Println(r.Method, r.Host+r.Path)
	fmt.Println("password sent in cleartext:", strings.Contains(string(r.Body), "hunter2"))
	fmt.Println("password as the API reads it:", r.Decrypted["/password"])
	fmt.Println(r.Opened)
	// Output:
	// POST acme.biapi.pro/2.0/users/me/connections
	// password sent in cleartext: false
	// password as the API reads it: hunter2
	// {"id_connector":40,"login":"john.doe","password":"hunter2"}
}

// Open decrypts every JWE of a body, leaving every other byte as it was.
func ExampleServer_Open() {
	srv := e2eetest.NewServer()
	defer srv.Close()
	enc := e2ee.NewEncryptor(e2ee.StaticKey(srv.Key()))
	jwe, err := enc.EncryptString(context.Background(), "123456")
	if err != nil {
		log.Fatal(err)
	}

	body := `{"otp": "` + jwe + `", "resume": true}`
	opened, err := srv.Open([]byte(body))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(opened)
	fields, _ := srv.DecryptFields([]byte(body))
	fmt.Println(fields)
	// Output:
	// {"otp": "123456", "resume": true}
	// map[/otp:123456]
}

// After a rotation the server serves a new key, and still decrypts what was
// encrypted with the old one.
func ExampleServer_Rotate() {
	srv := e2eetest.NewServer()
	defer srv.Close()
	old := srv.Key()
	jwe, err := e2ee.NewEncryptor(e2ee.StaticKey(old)).EncryptString(context.Background(), "hunter2")
	if err != nil {
		log.Fatal(err)
	}

	srv.Rotate()
	fmt.Println("new kid:", srv.Key().ID != old.ID)
	plaintext, err := srv.Decrypt(jwe)
	fmt.Println(plaintext, err)
	// Output:
	// new kid: true
	// hunter2 <nil>
}

// With RejectRetiredKeys, the stand-in refuses values encrypted with a key
// it served before; an e2ee.Transport with KeyRejected then refreshes the
// key and resends.
func ExampleServer_RejectRetiredKeys() {
	srv := e2eetest.NewServer()
	defer srv.Close()
	keys, err := e2ee.NewKeyFetcher(srv.URL, &e2ee.FetcherConfig{
		HTTPClient:         srv.Client(),
		MinRefreshInterval: time.Nanosecond, // refresh at once when told, for the example
	})
	if err != nil {
		log.Fatal(err)
	}
	defer keys.Close()
	routes, err := powens.Routes("acme", e2ee.NewEncryptor(keys))
	if err != nil {
		log.Fatal(err)
	}
	client := &http.Client{Transport: &e2ee.Transport{
		Base:        srv.Transport(),
		Routes:      routes,
		KeyRejected: func(r *http.Response) bool { return r.StatusCode == http.StatusConflict },
	}}
	post := func() {
		resp, err := client.Post("https://acme.biapi.pro/2.0/users/me/connections/7", "application/json",
			strings.NewReader(`{"otp":"123456"}`))
		if err != nil {
			log.Fatal(err)
		}
		resp.Body.Close()
		fmt.Println(resp.Status)
	}

	post() // fetches and caches the first key
	srv.Rotate()
	srv.RejectRetiredKeys(http.StatusConflict, `{"code":"unknownKid"}`)
	post() // rejected, refreshed, resent

	for _, r := range srv.Requests() {
		fmt.Println(r.Decrypted["/otp"], r.KeyIDs["/otp"] == srv.Key().ID)
	}
	// Output:
	// 200 OK
	// 200 OK
	// 123456 false
	// 123456 false
	// 123456 true
}

// Fail makes the key endpoint fail until Recover.
func ExampleServer_Fail() {
	srv := e2eetest.NewServer()
	defer srv.Close()
	get := func() {
		resp, err := srv.Client().Get("https://acme.biapi.pro/2.0/publickey")
		if err != nil {
			log.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		_, err = e2ee.ParseKey(body)
		fmt.Println(resp.StatusCode, "key:", err == nil)
	}

	srv.Fail(http.StatusServiceUnavailable, "maintenance")
	get()
	srv.Recover()
	get()
	fmt.Println(srv.KeyRequests(), "key requests")
	// Output:
	// 503 key: false
	// 200 key: true
	// 2 key requests
}

// In strict mode, on by default, the stand-in refuses credentials that
// arrive in cleartext, as the API would: here the code under test forgot to
// encrypt, posting with the server's plain client, and its request fails
// even though the test never looks at what the API decrypted.
func ExampleServer_Strict() {
	srv := e2eetest.NewServer()
	defer srv.Close()

	resp, err := srv.Client().Post("https://acme.biapi.pro/2.0/users/me/connections", "application/json",
		strings.NewReader(`{"id_connector":40,"login":"john.doe","password":"hunter2"}`))
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	fmt.Println(resp.Status)

	r, _ := srv.LastRequest()
	fmt.Println(r.Cleartext)
	fmt.Println(r.Err)
	// Output:
	// 400 Bad Request
	// [/login /password]
	// e2eetest: the API refuses what an e2ee.Transport would not send: e2ee: designated value in cleartext: /*, /* (request not sent: route "/users/{user}/connections")
}

// ServeRequest serves the stand-in on a listener of one's own, here plain
// HTTP, from a handler that sees each request with its record, as the
// e2ee command's standin does to log them.
func ExampleServer_ServeRequest() {
	srv := e2eetest.NewServer()
	defer srv.Close()

	lines := make(chan string, 1)
	own := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec, ok := srv.ServeRequest(w, r)
		if !ok {
			lines <- fmt.Sprintln(r.Method, r.URL.Path, "(the key)")
			return
		}
		lines <- fmt.Sprintln(r.Method, r.URL.Path, "cleartext:", rec.Cleartext, "decrypted:", len(rec.Decrypted))
	}))
	defer own.Close()

	resp, err := http.Get(own.URL + "/2.0/publickey")
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	fmt.Print(<-lines)

	resp, err = http.Post(own.URL+"/2.0/users/me/connections", "application/json",
		strings.NewReader(`{"id_connector":40,"login":"john.doe","password":"hunter2"}`))
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	fmt.Print(<-lines)
	fmt.Println(resp.Status)
	// Output:
	// GET /2.0/publickey (the key)
	// POST /2.0/users/me/connections cleartext: [/login /password] decrypted: 0
	// 400 Bad Request
}
