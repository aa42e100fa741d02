module github.com/credseal/e2ee/examples/retry

go 1.26.0

require (
	github.com/credseal/e2ee v0.0.0
	github.com/hashicorp/go-retryablehttp v0.7.8
)

require (
	github.com/go-jose/go-jose/v4 v4.1.9 // indirect
	github.com/go-json-experiment/json v1.27.2 // indirect
	github.com/hashicorp/go-cleanhttp v0.5.2 // indirect
	golang.org/x/net v0.63.0 // indirect
	golang.org/x/text v0.44.0 // indirect
)

replace github.com/credseal/e2ee => ../..
