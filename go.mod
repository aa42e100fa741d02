module github.com/credseal/e2ee

go 1.26.0

require (
	github.com/go-jose/go-jose/v4 v4.1.9
	github.com/go-json-experiment/json v1.27.2
	golang.org/x/net v0.63.0
)

require golang.org/x/text v0.44.0 // indirect
