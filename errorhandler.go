package e2ee

import (
	"errors"
	"net/http"
)

// ErrorHandler answers a request that a reverse proxy could not forward,
// for an [net/http/httputil.ReverseProxy] whose Transport is a [Transport]:
// set it as the proxy's ErrorHandler, as powens.NewRelay does. It is the
// one mapping of the package's refusals to HTTP answers:
//
//   - a request the Transport refused ([ErrNotSent]) because the key could
//     not be had ([ErrKeyUnavailable]): 503 Service Unavailable, with
//     Retry-After, since the same request may pass once the key is back;
//   - any other refusal: 400 Bad Request, with the refusal's message,
//     which names routes and JSON Pointers and never a value;
//   - any other error, the upstream's: 502 Bad Gateway, with no detail.
//
// Answers are text/plain and not cached.
func ErrorHandler(w http.ResponseWriter, r *http.Request, err error) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	switch {
	case errors.Is(err, ErrKeyUnavailable) && errors.Is(err, ErrNotSent):
		h.Set("Retry-After", "1")
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte("the API's encryption key is unavailable: try again\n"))
	case errors.Is(err, ErrNotSent):
		w.WriteHeader(http.StatusBadRequest)
		w.Write([]byte("request refused: " + err.Error() + "\n"))
	default:
		w.WriteHeader(http.StatusBadGateway)
		w.Write([]byte("bad gateway\n"))
	}
}
