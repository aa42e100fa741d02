package e2eetest

import (
	"net/http"
	"net/url"
	"slices"
	"testing"

	"github.com/credseal/e2ee/internal/fixture"
)

func TestCleartext(t *testing.T) {
	jwe := encrypt(t, fixtureKey(fixture.RSA2048A), "hunter2")
	for _, tt := range []struct {
		method, path, body string
		want               []string
	}{
		{"POST", "/2.0/users/me/connections", `{"id_connector":40,"login":"john","password":"` + jwe + `"}`, []string{"/login"}},
		{"POST", "/2.0/users/me/connections", `{"id_connector":40,"login":"` + jwe + `","password":null}`, nil},
		{"POST", "/2.0/users/me/connections", `{"id_connector":"40","source":"x","pin":1234,"list":["a"],"obj":{"a":"b"}}`,
			[]string{"/pin", "/list", "/obj"}},
		{"PUT", "/2.0/users/42/connections/7", `{"otp":"123456","resume":true}`, []string{"/otp"}},
		{"POST", "/2.0/users/me/transfers/3", `{"amount":10,"validated":true,"password":"x"}`, []string{"/password"}},
		{"POST", "/2.0/payments/p1", `{"validated":true,"payer":{"name":"x"},"fields":{"website":"x","token":"` + jwe + `"}}`,
			[]string{"/fields/website"}},
		{"POST", "/2.0//Users/ME/./connections/", `{"login":"john"}`, []string{"/login"}},
		{"POST", "/2.0/users/me/accounts", `{"password":"hunter2"}`, nil},
		{"POST", "/2.0/payments", `{"fields":{"website":"x"}}`, nil},
	} {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			r := &http.Request{Method: tt.method, URL: &url.URL{Path: tt.path}}
			var got []string
			if d := designationOf(r); d != nil {
				got = cleartext(d, []byte(tt.body))
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("cleartext(%s %s, %s) = %q; want %q", tt.method, tt.path, tt.body, got, tt.want)
			}
		})
	}
}
