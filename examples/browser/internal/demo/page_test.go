package demo_test

import (
	"bytes"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/credseal/e2ee/web"
)

func TestPageCannotSubmitWithoutTheModule(t *testing.T) {
	_, srv := startDemo(t)
	resp, err := http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`<form id="login" onsubmit="return false">`,                     // no action: no native submission
		`<button id="submit" type="submit" disabled>`,                   // enabled by the module only
		`"integrity":{"/static/` + web.Name() + `":"` + web.Integrity(), // the import map
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
