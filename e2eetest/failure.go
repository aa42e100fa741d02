package e2eetest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// answer is a response that the server was told to give.
type answer struct {
	status int
	body   string
}

// newAnswer returns the answer status, body, after checking that status is
// one a test may mean: 200 to 599. It panics otherwise, naming method.
func newAnswer(method string, status int, body string) *answer {
	if status < 200 || status > 599 {
		panic(fmt.Sprintf("e2eetest: %s: status %d is not between 200 and 599", method, status))
	}
	return &answer{status: status, body: body}
}

// write sends a: as JSON when the body is JSON, as text otherwise.
func (a *answer) write(w http.ResponseWriter) {
	ct := "text/plain; charset=utf-8"
	if json.Valid([]byte(a.body)) {
		ct = "application/json"
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(a.status)
	io.WriteString(w, a.body)
}

// Fail makes the key endpoint answer every request with status and body,
// until [Server.Recover], instead of serving the key: Fail(503, "") for an
// outage, or Fail(200, `{"kty":"EC"}`) for a body that is not a usable key.
// It replaces what an earlier Fail or FailNext set. status must be between
// 200 and 599; Fail panics otherwise.
func (s *Server) Fail(status int, body string) {
	a := newAnswer("Fail", status, body)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail, s.failLeft = a, -1
}

// FailNext makes the key endpoint answer its next n requests with status and
// body, as [Server.Fail] does, and serve the key again after them. It
// replaces what an earlier Fail or FailNext set; n <= 0 ends the failure
// now. status must be between 200 and 599; FailNext panics otherwise.
func (s *Server) FailNext(n, status int, body string) {
	a := newAnswer("FailNext", status, body)
	s.mu.Lock()
	defer s.mu.Unlock()
	if n <= 0 {
		s.fail, s.failLeft = nil, 0
		return
	}
	s.fail, s.failLeft = a, n
}

// Delay makes the key endpoint wait d before it answers each request, key or
// failure, until [Server.Recover] or Delay(0). A request whose client gives
// up (its context is done) ends then, and so does one in flight when the
// server is closed: its connection is closed without an answer.
func (s *Server) Delay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = max(d, 0)
}

// Recover ends what [Server.Fail], [Server.FailNext] and [Server.Delay] set:
// the key endpoint serves the key again, at once, to new requests and to
// those that Delay holds. It does not change the stand-in's answers
// ([Server.Respond], [Server.RejectRetiredKeys]).
func (s *Server) Recover() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail, s.failLeft, s.delay = nil, 0, 0
	close(s.recovered)
	s.recovered = make(chan struct{})
}

// wait waits d, then returns false, or returns true as soon as recovered is
// closed. When r's client gives up or the server is closed first, it aborts
// the handler: the connection is closed without an answer.
func (s *Server) wait(r *http.Request, d time.Duration, recovered <-chan struct{}) bool {
	s.waiting.Add(1)
	defer s.waiting.Add(-1)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return false
	case <-recovered:
		return true
	case <-r.Context().Done():
		panic(http.ErrAbortHandler)
	case <-s.done:
		panic(http.ErrAbortHandler)
	}
}
