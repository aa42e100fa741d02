module github.com/credseal/e2ee

go 1.26.0

require (
	github.com/go-jose/go-jose/v4 v4.1.9
	github.com/go-json-experiment/json v1.27.2
	golang.org/x/sync v0.25.0
)
