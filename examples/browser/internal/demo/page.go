package demo

import (
	"encoding/json"
	"html/template"
	"log"
	"net/http"
)

// Page is the login page, an [http.Handler]. Its form has no action and its
// fields no name: if the module does not load, nothing can be submitted, in
// cleartext or otherwise.
//
// The page reports its progress in attributes of its body element, for its
// tests: data-state is "loading", then "ready" (the key is imported) or
// "failed", then "sending", then "done", "refused" (the backend answered
// 4xx or 5xx) or "failed"; data-script is "ran" once the page's own module
// script runs, and "refused" when the browser refuses to run it (its import
// of e2ee.js failed, as with a wrong integrity value), after which it never
// runs.
type Page struct {
	Name      string   // the module's file name, web.Name(): the page loads /static/Name
	Integrity string   // its SRI value, web.Integrity()
	Patterns  []string // the fields to encrypt, as the backend's routes check them
}

// ImportMap returns an import map that gives the module's integrity to
// browsers that check it on imports too. html/template does not take an
// import map for JavaScript, so it is built here, with JSON escaping that
// keeps "</script>" out.
func (p Page) ImportMap() template.HTML {
	m, err := json.Marshal(map[string]any{"integrity": map[string]string{"/static/" + p.Name: p.Integrity}})
	if err != nil {
		panic(err) // strings only
	}
	return template.HTML(m)
}

// ServeHTTP serves the page.
func (p Page) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := pageTemplate.Execute(w, p); err != nil {
		log.Print(err)
	}
}

// pageTemplate is the login page.
var pageTemplate = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>e2ee: encrypted in the browser</title>
<script type="importmap">{{.ImportMap}}</script>
<style>
  body { font: 15px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 56em; padding: 0 1em; color: #1d2330; }
  h1 { font-size: 1.35em; margin-bottom: .2em; }
  .lead { color: #566; margin-top: 0; }
  form { display: grid; grid-template-columns: 9em 22em; gap: .6em 1em; align-items: center; padding: 1em; border: 1px solid #ccd; border-radius: 6px; width: max-content; }
  input { font: inherit; padding: .3em .4em; }
  button { grid-column: 2; font: inherit; padding: .4em; }
  #status { margin: .8em 0; font-weight: 600; }
  #status.bad { color: #a11; }
  #status.good { color: #17612e; }
  section { margin-top: 1em; }
  h2 { font-size: 1.05em; margin: 1.2em 0 .3em; }
  pre { background: #f4f5f8; padding: .6em; border-radius: 4px; white-space: pre-wrap; word-break: break-all; font-size: 12.5px; margin: 0; }
  table { border-collapse: collapse; }
  td, th { border: 1px solid #ccd; padding: .25em .6em; text-align: left; }
  .note { color: #566; font-size: .9em; }
</style>
</head>
<body data-state="loading">
<h1>Connect your bank</h1>
<p class="lead">Your credentials are encrypted in this page for the bank API only; the backend relays JWEs it cannot read.</p>
<form id="login" onsubmit="return false">
  <label for="login-id">Login</label> <input id="login-id" autocomplete="username" required>
  <label for="password">Password</label> <input id="password" type="password" autocomplete="current-password" required>
  <label for="website">Website <span class="note">(optional)</span></label> <input id="website">
  <button id="submit" type="submit" disabled>Connect</button>
</form>
<p id="status">Loading e2ee.js…</p>
<section id="result" hidden>
  <h2>1. The page posted to the backend</h2>
  <pre id="sent"></pre>
  <h2>2. The backend answered</h2>
  <pre id="answer"></pre>
  <h2>3. The API received <span class="note">(the stand-in's view: for the demo only)</span></h2>
  <pre id="received"></pre>
  <h2>4. The API decrypted</h2>
  <table id="decrypted"><thead><tr><th>field</th><th>value</th></tr></thead><tbody></tbody></table>
</section>
<script type="module" src="/static/{{.Name}}" integrity="{{.Integrity}}" id="e2ee-module"
  onerror="document.body.dataset.state = 'failed'; document.getElementById('status').textContent = 'e2ee.js failed to load (integrity check): nothing can be sent.'"></script>
<script type="module" id="page-script" onerror="document.body.dataset.script = 'refused'">
  import { fetchKey, encryptFields } from "/static/{{.Name}}";

  document.body.dataset.script = "ran";
  const patterns = {{.Patterns}};
  const $ = (id) => document.getElementById(id);
  const status = (text, cls) => { $("status").textContent = text; $("status").className = cls ?? ""; };
  const short = (body) => JSON.stringify(body, (k, v) => typeof v === "string" && v.length > 60 ? v.slice(0, 40) + "…" + v.slice(-12) : v, 2);

  let key;
  try {
    key = await fetchKey("/e2ee/publickey");
  } catch (err) {
    status(err.message, "bad");
    document.body.dataset.state = "failed";
    throw err;
  }
  $("submit").disabled = false;
  status("Key " + key.kid.slice(0, 12) + "… (" + key.modulusBits + " bits) ready: RSA-OAEP-256 + A256GCM.");
  document.body.dataset.state = "ready";

  $("login").addEventListener("submit", async () => {
    $("submit").disabled = true;
    document.body.dataset.state = "sending";
    try {
      const data = { id_connector: 40, login: $("login-id").value, password: $("password").value, website: $("website").value };
      const body = await encryptFields(key, data, patterns);
      $("login").reset();
      const resp = await fetch("/2.0/users/me/connections", {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
      });
      $("sent").textContent = short(body);
      $("answer").textContent = resp.status + " " + (await resp.text()).trim();
      const api = await (await fetch("/demo/api")).json();
      $("received").textContent = short(JSON.parse(api.body || "{}"));
      const rows = $("decrypted").tBodies[0];
      rows.replaceChildren();
      for (const [field, value] of Object.entries(api.decrypted ?? {}).sort()) {
        const tr = rows.insertRow();
        tr.insertCell().textContent = field;
        tr.insertCell().textContent = value === "" ? "(empty)" : value;
      }
      $("result").hidden = false;
      status(resp.ok ? "Sent: the backend relayed JWEs only." : "The backend refused the request.", resp.ok ? "good" : "bad");
      document.body.dataset.state = resp.ok ? "done" : "refused";
    } catch (err) {
      status(err.message, "bad");
      document.body.dataset.state = "failed";
    } finally {
      $("submit").disabled = false;
    }
  });
</script>
</body>
</html>
`))
