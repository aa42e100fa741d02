// Package bench measures the e2ee SDK side by side with its peers and with
// the floors beneath it: go-jose used directly, lestrrat-go/jwx, the bare
// crypto of a JWE, the jsontext tokenizer, MicahParks/keyfunc and jwx's
// jwk.Cache.
//
// It is a module of its own, so that the SDK's go.mod does not carry the
// peers. Its benchmarks are meant to run interleaved, a round at a time,
// with the run script beside this file, which summarises them with
// benchstat and rewrites the performance section of README.md, beside this
// file, with cmd/report.
// Every server it starts listens on loopback.
package bench
