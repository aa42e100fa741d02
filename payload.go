package e2ee

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/credseal/e2ee/internal/jsonpattern"
)

// DefaultMaxValues is the most values that one body may designate, for a
// Payload whose bound [Payload.WithMaxValues] did not set. Encrypting that
// many takes about 11 ms with a 2048-bit key and 85 ms with a 4096-bit key
// on one core; the API's requests designate a handful.
const DefaultMaxValues = 256

// Payload designates the sensitive fields of JSON request bodies and
// encrypts them in place.
//
// Fields are designated by patterns: a JSON Pointer (RFC 6901, with ~0 and ~1
// escapes) whose segments may be "*", meaning any member of an object or any
// element of an array. A pattern that begins with "!" excludes what it
// matches. A value is designated when some pattern matches its pointer
// exactly and no "!" pattern does: "!/payer" excludes the value at /payer
// only; "!/payer/*" excludes its members. A member literally named "*" is
// matched by the wildcard only.
//
// A Payload rewrites bodies in one pass over their bytes, keeping every
// byte outside the designated strings. A body whose values are not where
// the patterns look for them (a body stringified twice, "fields": "{...}"
// for "/fields/*") is refused with [ErrBodyShape]: a credential inside it
// would pass unseen. Errors show a member name only when a pattern names
// it literally; other names show as "*". [docs/fields.md] has the rules.
//
// A Payload is safe for concurrent use by multiple goroutines.
//
// [docs/fields.md]: https://github.com/credseal/e2ee/blob/main/docs/fields.md
type Payload struct {
	enc      *Encryptor
	patterns *jsonpattern.Set
	// workers bounds the encryptions of one body that run at once;
	// 0 means GOMAXPROCS.
	workers int
	// maxValues bounds the designated values of one body; 0 means
	// DefaultMaxValues.
	maxValues int
	// objectsOnly refuses arrays where patterns go (see ObjectsOnly).
	objectsOnly bool
}

// NewPayload returns a Payload that encrypts, with enc, the values that
// fields designate. Each field is a pattern as described on [Payload]. At
// least one pattern must designate something (not begin with "!").
//
// enc may be nil for a Payload used only to [Payload.Check] bodies.
func NewPayload(enc *Encryptor, fields ...string) (*Payload, error) {
	patterns, err := jsonpattern.Compile(fields)
	if err != nil {
		return nil, err
	}
	return &Payload{enc: enc, patterns: patterns}, nil
}

// WithMaxValues returns a copy of p that refuses a body designating more
// than n values (strings, nulls and JWEs alike), with an error wrapping
// [ErrTooManyValues], before encrypting or checking any. n <= 0 means
// [DefaultMaxValues].
func (p *Payload) WithMaxValues(n int) *Payload {
	q := *p
	q.maxValues = max(n, 0)
	return &q
}

// ObjectsOnly returns a copy of p that refuses, with [ErrBodyShape], a body
// whose root, or a value that a pattern goes through, is an array: for an
// API whose bodies are objects all the way to their designated values, so
// that "*" reads as "any member", never "any element".
func (p *Payload) ObjectsOnly() *Payload {
	q := *p
	q.objectsOnly = true
	return &q
}

func (p *Payload) maxValueCount() int {
	if p.maxValues > 0 {
		return p.maxValues
	}
	return DefaultMaxValues
}

// refreshKey fetches the key of p's Encryptor again, when its source can;
// it returns nil and no error when it cannot.
func (p *Payload) refreshKey(ctx context.Context) (*Key, error) {
	return p.enc.refresh(ctx)
}

// Designates reports whether p designates the value at pointer, a JSON
// Pointer (RFC 6901) such as "/fields/website": whether [Payload.Encrypt]
// encrypts a string there and [Payload.Check] requires a JWE there. A token
// matches a pattern segment that is "*" or that names the same member (or
// array index). An invalid pointer designates nothing.
func (p *Payload) Designates(pointer string) bool {
	if pointer == "" || pointer[0] != '/' {
		return false
	}
	var toks []string
	for tok := range strings.SplitSeq(pointer[1:], "/") {
		name, err := jsonpattern.UnescapeToken(tok)
		if err != nil {
			return false
		}
		toks = append(toks, name)
	}
	return p.patterns.Designates(toks)
}

// Encrypt returns body with every designated string replaced by the JWE of
// its decoded value, and every other byte exactly as it was.
//
// A designated value that is already a JWE (see [IsJWE]), or null, is left
// as it is, so encrypting twice equals encrypting once (a [Transport]
// refuses a JWE in its input, unless [Route.AllowJWE]). A designated number,
// boolean, object or array is an error wrapping [ErrNotString] that names its
// JSON Pointer. Duplicate member names are all encrypted. Invalid JSON,
// invalid UTF-8 and trailing data are errors, and so is a body that cannot
// hold its values where the patterns look for them ([ErrBodyShape]: a
// stringified body, say). When a body has several values
// to encrypt, they are encrypted concurrently, all with the same key.
//
// On error nothing partial is returned, and no error contains a value. When
// nothing needs encrypting, Encrypt returns body itself and asks the key
// source nothing; body is never modified.
func (p *Payload) Encrypt(ctx context.Context, body []byte) ([]byte, error) {
	out, _, err := p.encrypt(ctx, body, true)
	return out, err
}

// AppendEncrypt appends to dst what [Payload.Encrypt] returns for body, and
// returns the extended slice; on error it returns dst unchanged. A caller
// that rewrites large bodies one after another can pass the same buffer
// each time (out = p.AppendEncrypt(ctx, out[:0], body)), so that the
// rewritten body costs no allocation once the buffer is large enough. dst
// may share memory with body, as in p.AppendEncrypt(ctx, buf[:0], buf): the
// body is then rewritten in a buffer of its own first, and copied.
func (p *Payload) AppendEncrypt(ctx context.Context, dst, body []byte) ([]byte, error) {
	parts, _, err := p.encryptParts(ctx, body, true)
	if err != nil {
		return dst, err
	}
	if overlap(dst, body) {
		return append(dst, bytes.Join(parts, nil)...), nil
	}
	n := 0
	for _, part := range parts {
		n += len(part)
	}
	dst = slices.Grow(dst, n)
	for _, part := range parts {
		dst = append(dst, part...)
	}
	return dst, nil
}

// overlap reports whether appending to dst, within its capacity, may write
// over body's bytes.
func overlap(dst, body []byte) bool {
	if cap(dst) == len(dst) || len(body) == 0 {
		return false
	}
	d := uintptr(unsafe.Pointer(unsafe.SliceData(dst)))
	b := uintptr(unsafe.Pointer(unsafe.SliceData(body)))
	return d < b+uintptr(len(body)) && b < d+uintptr(cap(dst))
}

// encrypt is Encrypt, also returning the kid of the key used ("" when nothing
// was encrypted). Unless allowJWE, a designated value that is already a JWE
// is an error.
func (p *Payload) encrypt(ctx context.Context, body []byte, allowJWE bool) ([]byte, string, error) {
	parts, kid, err := p.encryptParts(ctx, body, allowJWE)
	switch {
	case err != nil:
		return nil, "", err
	case kid == "":
		return body, "", nil
	}
	// bytes.Join copies the parts into one allocation that it does not zero
	// first.
	return bytes.Join(parts, nil), kid, nil
}

// encryptParts returns the parts of the encrypted body, in order: the body's
// bytes between the designated values, and each value's JWE, quoted. It
// returns body alone, and no kid, when nothing needs encrypting.
func (p *Payload) encryptParts(ctx context.Context, body []byte, allowJWE bool) ([][]byte, string, error) {
	w := p.walk(body, jsonpattern.Options{})
	defer w.Release()
	if w.Err != nil {
		return nil, "", w.Err
	}
	if w.FirstJWE != "" && !allowJWE {
		return nil, "", fmt.Errorf("%w: %s: a JWE is as good as the credential it holds, and one copied "+
			"from a log would be replayed (a route lets JWEs through with AllowJWE, for a user interface "+
			"that encrypts values itself)", ErrAlreadyEncrypted, w.FirstJWE)
	}
	if len(w.Found) == 0 {
		return [][]byte{body}, "", nil
	}
	if p.enc == nil {
		return nil, "", errors.New("e2ee: Payload has no Encryptor")
	}
	ke, err := p.enc.current(ctx)
	if err != nil {
		return nil, "", err
	}

	jwes, err := encryptAll(ctx, ke, w.Found, p.workerCount())
	if err != nil {
		return nil, "", err
	}

	parts := make([][]byte, 0, 2*len(w.Found)+1)
	last := 0
	for i, f := range w.Found {
		parts = append(parts, body[last:f.Start], []byte(`"`+jwes[i]+`"`))
		last = f.End
	}
	return append(parts, body[last:]), ke.key.ID, nil
}

// minConcurrent is the fewest values of one body encrypted concurrently.
// With 2 values, two goroutines took as long as one on a 2-vCPU machine
// (waking the second core cost what it saved). With 4 values, bench/'s
// BenchmarkConcurrency measures one Encrypt at 0.83× the time of four
// one-value Encrypts with 2048-bit keys (bare RSA on the same goroutines:
// 0.72×) and 0.60× with 4096-bit keys (0.59×). More idle cores gain more.
const minConcurrent = 3

// encryptAll encrypts the values of found with ke: one after the other when
// there are fewer than minConcurrent, else on up to workers goroutines that
// take the next value from a shared counter, while the caller waits.
func encryptAll(ctx context.Context, ke *keyEncrypter, found []jsonpattern.Found, workers int) ([]string, error) {
	jwes := make([]string, len(found))
	errs := make([]error, len(found))
	var next atomic.Int64
	work := func() {
		for {
			i := int(next.Add(1)) - 1
			if i >= len(found) {
				return
			}
			if err := ctx.Err(); err != nil {
				errs[i] = err
				return
			}
			if jwes[i], errs[i] = ke.encrypt(found[i].Plain); errs[i] != nil {
				next.Store(int64(len(found))) // stop the others early
				return
			}
		}
	}
	if workers <= 1 || len(found) < minConcurrent {
		work()
	} else {
		var wg sync.WaitGroup
		for range min(workers, len(found)) {
			wg.Go(work)
		}
		wg.Wait()
	}
	if err := errors.Join(errs...); err != nil {
		return nil, errs[slices.IndexFunc(errs, func(e error) bool { return e != nil })]
	}
	return jwes, nil
}

func (p *Payload) workerCount() int {
	if p.workers > 0 {
		return p.workers
	}
	return runtime.GOMAXPROCS(0)
}

// Check returns nil when every designated value of body is a JWE, null or
// absent. Otherwise it returns an error wrapping [ErrCleartext] that names the
// JSON Pointers of the values still in cleartext (never the values). It
// needs no key. Invalid JSON, a body that cannot hold its values where the
// patterns look for them ([ErrBodyShape]), and more designated values than
// the Payload's bound, are errors too.
func (p *Payload) Check(body []byte) error {
	w := p.walk(body, jsonpattern.Options{Check: true})
	defer w.Release()
	if w.Err != nil {
		return w.Err
	}
	return checkError(w.Cleartext, nil)
}

// verify is Check for a Transport's VerifyOnly route. When p has an
// Encryptor, it also refuses a JWE that was not made with a key that the
// Encryptor's source serves, now or, for a [KeyFinder], recently: an unknown
// kid, or an encrypted key that does not fit the key its kid names (see
// madeWith).
func (p *Payload) verify(ctx context.Context, body []byte) error {
	if p.enc == nil {
		return p.Check(body)
	}
	if _, err := p.enc.current(ctx); err != nil {
		return err
	}
	w := p.walk(body, jsonpattern.Options{Check: true, Keyed: true})
	defer w.Release()
	if w.Err != nil {
		return w.Err
	}
	keys := make(map[string]*Key)
	var foreign []string
	for _, j := range w.JWEs {
		k, seen := keys[j.Info.Kid]
		if !seen {
			var err error
			if k, err = p.enc.keyByID(ctx, j.Info.Kid); err != nil {
				return err
			}
			keys[j.Info.Kid] = k
		}
		switch {
		case k == nil:
			foreign = append(foreign, j.Pointer+" (a kid the key source does not know)")
		case !madeWith(j.Info, k):
			foreign = append(foreign, j.Pointer+" (does not fit the key its kid names)")
		}
	}
	return checkError(w.Cleartext, foreign)
}

// maxListed bounds the pointers that a Check error lists.
const maxListed = 10

// checkError returns the error of a body with designated values in
// cleartext and JWEs of keys not served, or nil when there are none.
func checkError(cleartext, foreign []string) error {
	list := func(ptrs []string) string {
		if n := len(ptrs); n > maxListed {
			return fmt.Sprintf("%s, and %d more", strings.Join(ptrs[:maxListed], ", "), n-maxListed)
		}
		return strings.Join(ptrs, ", ")
	}
	switch {
	case len(cleartext) > 0 && len(foreign) > 0:
		return &bodyCheckError{
			msg:  fmt.Sprintf("%s: %s; not encrypted with a key the API serves: %s", ErrCleartext, list(cleartext), list(foreign)),
			errs: []error{ErrCleartext, ErrUnknownKey},
		}
	case len(cleartext) > 0:
		return fmt.Errorf("%w: %s", ErrCleartext, list(cleartext))
	case len(foreign) > 0:
		return fmt.Errorf("%w: %s", ErrUnknownKey, list(foreign))
	}
	return nil
}

// walk reads body once with p's patterns and bounds, as o says.
func (p *Payload) walk(body []byte, o jsonpattern.Options) *jsonpattern.Walker {
	o.MaxValues, o.ObjectsOnly = p.maxValueCount(), p.objectsOnly
	return jsonpattern.Walk(p.patterns, body, o)
}

// reachesParam reports whether p designates the query parameter name, or
// goes through it (see jsonpattern.Set.ReachesParam).
func (p *Payload) reachesParam(name string) bool { return p.patterns.ReachesParam(name) }

// literalAt reports whether some pattern of p names the member name at
// depth literally.
func (p *Payload) literalAt(depth int, name string) bool { return p.patterns.LiteralAt(depth, name) }
