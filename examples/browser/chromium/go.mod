module github.com/credseal/e2ee/examples/browser/chromium

go 1.26.0

require (
	github.com/chromedp/chromedp v0.24.0
	github.com/credseal/e2ee v0.0.0
)

require (
	github.com/chromedp/cdproto v0.160.5 // indirect
	github.com/go-jose/go-jose/v4 v4.1.9 // indirect
	github.com/go-json-experiment/json v1.27.2 // indirect
	golang.org/x/net v0.63.0 // indirect
	golang.org/x/text v0.44.0 // indirect
)

replace github.com/credseal/e2ee => ../../..
