package chromium

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/credseal/e2ee"
	"github.com/credseal/e2ee/examples/browser/internal/demo"
	"github.com/credseal/e2ee/internal/fixture"
	"github.com/credseal/e2ee/powens"
	"github.com/credseal/e2ee/web"
)

var screenshot = flag.String("screenshot", "", "also write the result page's screenshot to this file (e.g. ../../../docs/browser-demo.png)")

// The credentials that the browser test types: non-ASCII, JSON escapes, and
// an empty optional field.
const (
	typedLogin    = "zoë.dupont@exemple.fr"
	typedPassword = `pässwörd "q" \ € 日本 🔐`
	typedWebsite  = ""
)

// chromium returns the path of a Chromium or Chrome. Without one, the test
// fails when the environment variable CI is "true", and is skipped otherwise.
func chromium(t testing.TB) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium not found: CI runs the browser test (apt-get update && apt-get install -y chromium)")
	}
	t.Skip("chromium not found: install it to run the browser test (on Debian: apt-get update && apt-get install -y chromium)")
	return ""
}

// startDemo serves a new demo backend on loopback for the test.
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

// newBrowser starts a headless Chromium with a fresh profile that resolves
// no host name but loopback addresses, and returns a context for chromedp
// actions in one tab.
func newBrowser(t testing.TB) context.Context {
	t.Helper()
	path := chromium(t)
	profile := t.TempDir()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1000, 800),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc() // waits for the browser to exit, before the profile is removed
	})
	// The first action starts the browser, which lives as long as the context
	// of that action: ctx, not one with a timeout.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting %s: %v", path, err)
	}
	return ctx
}

// state waits until the page's body has data-state want, or a state that
// rules it out, and fails the test with what the page shows unless it is
// want.
func state(t *testing.T, ctx context.Context, want string) {
	t.Helper()
	ends := map[string][]string{ // the states that rule want out
		"ready":    {"failed"},
		"done":     {"failed", "refused"},
		"failed":   {"ready"},
		"rejected": {"failed", "done", "refused"},
	}
	if got := waitBody(t, ctx, "data-state", want, ends[want]...); got != want {
		status, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("status")?.textContent ?? ""`))
		t.Fatalf("page state %q, status %q; want state %q", got, status, want)
	}
}

// waitBody waits, for at most 30 seconds, until the page's body element has
// the attribute attr with one of the values want and others, and returns it.
// It fails the test when the deadline passes first.
func waitBody(t *testing.T, ctx context.Context, attr, want string, others ...string) string {
	t.Helper()
	var sel []string
	for _, v := range append([]string{want}, others...) {
		sel = append(sel, fmt.Sprintf("body[%s=%q]", attr, v))
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err := chromedp.Do(wctx, chromedp.WaitReady(chromedp.CSS(strings.Join(sel, ", "))))
	got, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.getAttribute(`+strconv.Quote(attr)+`) ?? ""`))
	if err != nil {
		t.Fatalf("waiting for %s: %v; the body has %s=%q", strings.Join(sel, " or "), err, attr, got)
	}
	return got
}

// run runs actions in the tab of ctx, failing the test on an error or after
// a minute.
func run(t *testing.T, ctx context.Context, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	rctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(rctx, actions...); err != nil {
		t.Fatal(err)
	}
}

// submit types login and password into the page's form and submits it.
func submit(t *testing.T, ctx context.Context, login, password string) {
	t.Helper()
	run(t, ctx,
		chromedp.SendKeys(chromedp.ID("login-id"), login),
		chromedp.SendKeys(chromedp.ID("password"), password),
		chromedp.Click(chromedp.ID("submit")),
	)
}

// TestChromiumEncryptsWhatTheUserTypes drives the demo in Chromium: a user
// types credentials into the login page, which loads e2ee.js with its
// integrity value, encrypts them and posts them to the backend, which
// relays them to the stand-in for the API. The stand-in decrypts exactly
// what was typed, and no byte of it reached the backend in cleartext.
func TestChromiumEncryptsWhatTheUserTypes(t *testing.T) {
	ctx := newBrowser(t)
	d, srv := startDemo(t)
	priv := fixture.Private(fixture.RSA2048A)
	if !d.API.Key().PublicKey.Equal(&priv.PublicKey) {
		t.Fatal("the stand-in does not serve fixture key A")
	}

	run(t, ctx, chromedp.Navigate(srv.URL+"/"))
	state(t, ctx, "ready")
	integrity, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.ID("e2ee-module"), "integrity"))
	if err != nil || !integrity.Exists || integrity.Value != web.Integrity() {
		t.Fatalf("the module's script element has integrity %q (%v); want %q", integrity.Value, err, web.Integrity())
	}
	submit(t, ctx, typedLogin, typedPassword)
	state(t, ctx, "done")
	t.Logf("screenshot of the result page: %s", saveScreenshot(t, ctx))

	received, ok := d.API.LastRequest()
	if !ok || d.API.APIRequests() != 1 {
		t.Fatalf("the API received %d requests; want 1", d.API.APIRequests())
	}
	want := map[string]string{"/login": typedLogin, "/password": typedPassword, "/website": typedWebsite}
	if !maps.Equal(received.Decrypted, want) {
		t.Errorf("the API decrypted %q; want %q", received.Decrypted, want)
	}
	if received.Err != nil {
		t.Errorf("the API could not open the body: %v", received.Err)
	}
	posted := checkNoCleartext(t, d.Inbound(), typedLogin, typedPassword)
	if !bytes.Equal(posted, received.Body) {
		t.Errorf("the backend received %q and forwarded %q; want the same bytes", posted, received.Body)
	}
	checkPostedJWEs(t, posted, d.API.Key(), priv, want)

	shown, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("decrypted")))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(shown, typedLogin) || !strings.Contains(shown, typedPassword) {
		t.Errorf("the result page shows %q; want the decrypted values", shown)
	}
}

// checkNoCleartext checks that no request the backend received carries any
// of secrets, in any encoding, and returns the body of the last POST.
func checkNoCleartext(t *testing.T, inbound []demo.Request, secrets ...string) (posted []byte) {
	t.Helper()
	for _, r := range inbound {
		for _, secret := range secrets {
			if where := leak(r, secret); where != "" {
				t.Errorf("%s %s: the backend received a cleartext credential (%s)", r.Method, r.URL, where)
			}
		}
		if r.Method == http.MethodPost {
			posted = r.Body
		}
	}
	return posted
}

// checkPostedJWEs checks the body the page posted: id_connector in clear,
// and in login, password and website JWEs that pass IsJWE, decrypt with
// go-jose to the values of want, and have the Go Encryptor's header for
// key, byte for byte.
func checkPostedJWEs(t *testing.T, posted []byte, key *e2ee.Key, priv *rsa.PrivateKey, want map[string]string) {
	t.Helper()
	var body map[string]any
	if err := json.Unmarshal(posted, &body); err != nil {
		t.Fatalf("the page posted %q: %v", posted, err)
	}
	if body["id_connector"] != 40.0 {
		t.Errorf("id_connector = %v; want 40, in clear", body["id_connector"])
	}
	goJWE, err := e2ee.NewEncryptor(e2ee.StaticKey(key)).EncryptString(context.Background(), "x")
	if err != nil {
		t.Fatal(err)
	}
	goHeader, _, _ := strings.Cut(goJWE, ".")
	for _, field := range []string{"login", "password", "website"} {
		jwe, _ := body[field].(string)
		if !e2ee.IsJWE(jwe) {
			t.Errorf("%s = %.40q; want a JWE", field, jwe)
			continue
		}
		header, plain, err := fixture.Decrypt(jwe, priv)
		if err != nil {
			t.Errorf("%s: go-jose cannot decrypt it: %v", field, err)
			continue
		}
		if string(plain) != want["/"+field] {
			t.Errorf("%s decrypts to %q; want %q", field, plain, want["/"+field])
		}
		if len(header) != 3 {
			t.Errorf("%s: header %v; want alg, enc and kid only", field, header)
		}
		if h, _, _ := strings.Cut(jwe, "."); h != goHeader {
			t.Errorf("%s: header %s; want the Go Encryptor's %s", field, decodeB64(h), decodeB64(goHeader))
		}
	}
}

// TestChromiumRefusesAPageThatPostsCleartext drives a broken page that posts
// what is typed as it is: the backend refuses it (400), naming neither a
// value nor a member name, and forwards nothing.
func TestChromiumRefusesAPageThatPostsCleartext(t *testing.T) {
	ctx := newBrowser(t)
	d, srv := startDemo(t)
	addTestPages(d)

	run(t, ctx, chromedp.Navigate(srv.URL+"/test/cleartext"))
	state(t, ctx, "ready")
	submit(t, ctx, "cleartext-login", "cleartext-pässword")
	state(t, ctx, "done")
	answer, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("answer")))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(answer, "400 ") || !strings.Contains(answer, "designated value in cleartext: /*, /*") {
		t.Errorf("the backend answered the cleartext page %q; want 400, for two fields", answer)
	}
	// No pattern names login or password literally (ConnectionCreate's are
	// "/*" and exclusions), so neither name shows, nor any value.
	for _, s := range []string{"cleartext-pässword", "cleartext-login", "/login", "/password"} {
		if strings.Contains(answer, s) {
			t.Errorf("the backend's answer carries %q: %q", s, answer)
		}
	}
	if n := d.API.APIRequests(); n != 0 {
		t.Errorf("the API received %d requests; want 0", n)
	}
	if last := d.Inbound(); !bytes.Contains(last[len(last)-1].Body, []byte("cleartext-pässword")) {
		t.Errorf("the cleartext page did not post cleartext; the test proves nothing")
	}
}

// TestChromiumRunsNothingWithAWrongIntegrity serves the login page with a
// wrong hash in its integrity attribute: the module does not load, so the
// page's own script, which imports it, never runs: the button stays
// disabled and the key is never fetched.
func TestChromiumRunsNothingWithAWrongIntegrity(t *testing.T) {
	ctx := newBrowser(t)
	d, srv := startDemo(t)
	addTestPages(d)

	run(t, ctx, chromedp.Navigate(srv.URL+"/test/wrong-integrity"))
	state(t, ctx, "failed")
	// The page's script reports "ran" when its body runs; the browser fires
	// its error event, which reports "refused", when it will never run.
	if got := waitBody(t, ctx, "data-script", "refused", "ran"); got != "refused" {
		t.Fatalf("the page's script ran with the module refused (data-script %q)", got)
	}
	disabled, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.getElementById("submit").disabled`))
	if err != nil {
		t.Fatal(err)
	}
	status, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("status")))
	if err != nil {
		t.Fatal(err)
	}
	if !disabled || !strings.Contains(status, "failed to load") {
		t.Errorf("with a wrong integrity value: button disabled %v, status %q; want disabled and a load failure", disabled, status)
	}
	if n := countKeyFetches(d.Inbound()); n != 0 {
		t.Errorf("the page fetched the key %d times with the module refused; want 0", n)
	}
}

// TestDoubleStringifiedBodyFailsClosed drives a page that stringifies twice:
// it passes JSON.stringify(body) to encryptFields, and would post
// JSON.stringify of the result, one JSON string with the credentials in it
// in cleartext. encryptFields refuses the string, and nothing is posted.
func TestDoubleStringifiedBodyFailsClosed(t *testing.T) {
	ctx := newBrowser(t)
	d, srv := startDemo(t)
	addTestPages(d)
	const login, password = "twice-login", "tw1ce-Str1ngified-pässwörd"

	run(t, ctx, chromedp.Navigate(srv.URL+"/test/double-stringify"))
	state(t, ctx, "ready")
	run(t, ctx,
		chromedp.SendKeys(chromedp.ID("login-id"), login),
		chromedp.SendKeys(chromedp.ID("password"), password),
		chromedp.Click(chromedp.ID("submit")),
	)
	state(t, ctx, "rejected") // set only after encryptFields rejected, on a path that posts nothing

	code, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.dataset.code`))
	if err != nil {
		t.Fatal(err)
	}
	status, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("status")))
	if err != nil {
		t.Fatal(err)
	}
	if code != "shape" || !strings.Contains(status, "stringified") {
		t.Errorf("encryptFields rejected the stringified body with %q %q; want code shape and a message that suggests stringifying", code, status)
	}
	if strings.Contains(status, password) || strings.Contains(status, login) {
		t.Errorf("encryptFields's error carries a credential: %q", status)
	}
	if posted := checkNoCleartext(t, d.Inbound(), login, password); posted != nil {
		t.Errorf("the page posted %q; want nothing posted", posted)
	}
	if n := d.API.APIRequests(); n != 0 {
		t.Errorf("the API received %d requests; want 0", n)
	}
}

// addTestPages adds to the demo the pages that only the test serves: the
// login page with a wrong integrity value, a page that posts cleartext, and
// a page that stringifies the body twice.
func addTestPages(d *demo.Backend) {
	wrong := sha512.Sum384([]byte("not the module"))
	d.Handle("GET /test/wrong-integrity", demo.Page{Name: web.Name(), Integrity: "sha384-" + base64.StdEncoding.EncodeToString(wrong[:]),
		Patterns: powens.Fields(powens.ConnectionCreate)})
	d.Handle("GET /test/cleartext", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write([]byte(cleartextPage))
	}))
	patterns, err := json.Marshal(powens.Fields(powens.ConnectionCreate))
	if err != nil {
		panic(err) // strings only
	}
	doubleStringify := fmt.Sprintf(doubleStringifyPage, "/static/"+web.Name(), patterns)
	d.Handle("GET /test/double-stringify", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write([]byte(doubleStringify))
	}))
}

// cleartextPage is a broken login page: it posts what is typed as it is.
const cleartextPage = `<!doctype html>
<html><head><meta charset="utf-8"><title>broken page</title></head>
<body data-state="loading">
<form id="login" onsubmit="return false">
<input id="login-id"> <input id="password" type="password"> <button id="submit" type="submit">Connect</button>
</form>
<pre id="answer"></pre>
<script type="module">
  const $ = (id) => document.getElementById(id);
  $("login").addEventListener("submit", async () => {
    const resp = await fetch("/2.0/users/me/connections", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ id_connector: 40, login: $("login-id").value, password: $("password").value }) });
    $("answer").textContent = resp.status + " " + (await resp.text()).trim();
    document.body.dataset.state = "done";
  });
  document.body.dataset.state = "ready";
</script>
</body></html>
`

// doubleStringifyPage is a broken login page, a format taking the module's
// path and the patterns: it stringifies the body before encryptFields, and
// the result again to post it. It reports its outcome in the body's
// data-state: "rejected" (and data-code) when encryptFields rejects, and
// then posts nothing; "done" or "refused" after posting, by the answer.
const doubleStringifyPage = `<!doctype html>
<html><head><meta charset="utf-8"><title>broken page</title></head>
<body data-state="loading">
<form id="login" onsubmit="return false">
<input id="login-id"> <input id="password" type="password"> <button id="submit" type="submit">Connect</button>
</form>
<p id="status"></p>
<pre id="answer"></pre>
<script type="module">
  import { fetchKey, encryptFields } from %q;
  const patterns = %s;
  const $ = (id) => document.getElementById(id);
  let key;
  try {
    key = await fetchKey("/e2ee/publickey");
  } catch (err) {
    $("status").textContent = err.message;
    document.body.dataset.state = "failed";
    throw err;
  }
  $("login").addEventListener("submit", async () => {
    document.body.dataset.state = "sending";
    const data = { id_connector: 40, login: $("login-id").value, password: $("password").value };
    let body;
    try {
      body = await encryptFields(key, JSON.stringify(data), patterns);
    } catch (err) {
      $("status").textContent = err.message;
      document.body.dataset.code = err.code ?? "";
      document.body.dataset.state = "rejected";
      return;
    }
    const resp = await fetch("/2.0/users/me/connections", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body) });
    $("answer").textContent = resp.status + " " + (await resp.text()).trim();
    document.body.dataset.state = resp.ok ? "done" : "refused";
  });
  document.body.dataset.state = "ready";
</script>
</body></html>
`

func countKeyFetches(reqs []demo.Request) int {
	n := 0
	for _, r := range reqs {
		if strings.HasPrefix(r.URL, "/e2ee/publickey") {
			n++
		}
	}
	return n
}

// leak returns where r carries secret, in any of the encodings a page could
// send it in, or a run of six of its bytes that cannot occur in base64url,
// or "" when it carries none of it.
func leak(r demo.Request, secret string) string {
	var parts []struct{ name, text string }
	add := func(name, text string) { parts = append(parts, struct{ name, text string }{name, text}) }
	add("body", string(r.Body))
	add("URL", r.URL)
	if u, err := url.PathUnescape(r.URL); err == nil {
		add("URL, unescaped", u)
	}
	for k, vs := range r.Header {
		add("header "+k, strings.Join(vs, "\n"))
	}
	jsonText, _ := json.Marshal(secret)
	forms := []string{
		secret,
		strings.Trim(string(jsonText), `"`),
		strings.Trim(asciiJSON(secret), `"`),
		url.QueryEscape(secret),
		url.PathEscape(secret),
	}
	for _, p := range parts {
		for _, f := range forms {
			if strings.Contains(p.text, f) {
				return "the whole credential, in the " + p.name
			}
		}
		for i := 0; i+6 <= len(secret); i++ {
			if run := secret[i : i+6]; !base64URLOnly(run) && strings.Contains(p.text, run) {
				return fmt.Sprintf("bytes %d to %d of the credential, in the %s", i, i+6, p.name)
			}
		}
	}
	return ""
}

// asciiJSON returns s as a JSON string with every non-ASCII character escaped.
func asciiJSON(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteString(`\` + string(r))
		case r < 0x80:
			b.WriteRune(r)
		case r > 0xffff:
			r -= 0x10000
			fmt.Fprintf(&b, `\u%04x\u%04x`, 0xd800+(r>>10), 0xdc00+(r&0x3ff))
		default:
			fmt.Fprintf(&b, `\u%04x`, r)
		}
	}
	return `"` + b.String() + `"`
}

func base64URLOnly(s string) bool {
	return strings.Trim(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") == ""
}

func decodeB64(s string) string {
	b, _ := base64.RawURLEncoding.DecodeString(s)
	return string(b)
}

// saveScreenshot writes a screenshot of the whole page under the test's
// temporary directory, and to -screenshot when set, and returns its path.
func saveScreenshot(t *testing.T, ctx context.Context) string {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(sctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	path := filepath.Join(t.TempDir(), "browser-demo.png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	if *screenshot != "" {
		if err := os.WriteFile(*screenshot, png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

// BenchmarkEncryptStringChromium measures one encryptString in Chromium,
// for 2048 and 4096-bit keys: the page encrypts b.N values in a loop, timed
// from Go around the loop (one DevTools round trip per b.N encryptions).
// It also reports the median of the mean times of batches of 10 calls,
// timed in the page (whose clock has a coarse resolution, 100 µs, unless the
// page is cross-origin isolated), as µs-median/op.
func BenchmarkEncryptStringChromium(b *testing.B) {
	ctx := newBrowser(b)
	_, srv := startDemo(b)
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/")); err != nil {
		b.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		key  string
	}{{"2048", fixture.RSA2048A}, {"4096", fixture.RSA4096}} {
		b.Run(tt.name, func(b *testing.B) {
			pub := fixture.Public(tt.key)
			jwk := string(fixture.JWK(pub, map[string]any{"kid": fixture.Thumbprint(pub)}))
			setup := fmt.Sprintf(`(async () => {
				const m = await import("/static/%s");
				window.benchKey = await m.importKey(%s);
				window.benchEncrypt = m.encryptString;
				await m.encryptString(window.benchKey, "warm-up");
				return true;
			})()`, web.Name(), jwk)
			if ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](setup, chromedp.EvalAwaitPromise)); err != nil || !ok {
				b.Fatalf("setup: %v", err)
			}
			loop := fmt.Sprintf(`(async () => {
				const batches = [];
				for (let i = 0; i < %d; ) {
					const t0 = performance.now(), n = Math.min(10, %[1]d - i);
					for (let j = 0; j < n; j++, i++) await window.benchEncrypt(window.benchKey, "hunter2");
					batches.push((performance.now() - t0) / n);
				}
				batches.sort((x, y) => x - y);
				return batches[batches.length >> 1] * 1000;
			})()`, b.N)
			b.ResetTimer()
			median, err := chromedp.Run(ctx, chromedp.Evaluate[float64](loop, chromedp.EvalAwaitPromise))
			if err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			b.ReportMetric(median, "µs-median/op")
		})
	}
}
