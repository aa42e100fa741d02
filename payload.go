package e2ee

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unicode"
	"unsafe"

	"github.com/credseal/e2ee/internal/jwe"
	"github.com/go-json-experiment/json/jsontext"
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
// A Payload rewrites bodies in one pass over their bytes, without decoding
// them into maps: member order, whitespace, number literals and escapes
// outside the designated strings are kept exactly. A body may designate at
// most [DefaultMaxValues] values, or the bound that [Payload.WithMaxValues]
// sets.
//
// A body must hold its values where the patterns look for them: its root is
// an object or an array, and so is every value that a pattern goes through
// (null there counts as absent). A body whose root is a string (stringified
// twice), a number, a boolean or null is refused with [ErrBodyShape], and so
// is "fields": "{...}" for "/fields/*": otherwise a credential inside it
// would pass unseen.
//
// Errors name designated values by their JSON Pointer. Member names come
// from the body, and most passwords look like member names, so a pointer
// shows a member name only when a pattern names it literally (as "/login"
// or "!/id_connector" do); other names show as "*".
//
// A Payload is safe for concurrent use by multiple goroutines.
type Payload struct {
	enc      *Encryptor
	patterns []pattern
	// workers bounds the encryptions of one body that run at once;
	// 0 means GOMAXPROCS.
	workers int
	// maxValues bounds the designated values of one body; 0 means
	// DefaultMaxValues.
	maxValues int
	// objectsOnly refuses arrays where patterns go (see ObjectsOnly).
	objectsOnly bool
}

// pattern is one compiled field pattern.
type pattern struct {
	exclude bool
	segs    []segment
}

// segment is one reference token of a pattern.
type segment struct {
	name     string // unescaped member name; "*" when wild
	wild     bool
	index    int // the array index name denotes, or -1
	hasIndex bool
}

func (s segment) matchName(name []byte) bool { return s.wild || string(name) == s.name }

func (s segment) matchIndex(i int) bool { return s.wild || (s.hasIndex && s.index == i) }

// NewPayload returns a Payload that encrypts, with enc, the values that
// fields designate. Each field is a pattern as described on [Payload]. At
// least one pattern must designate something (not begin with "!").
//
// enc may be nil for a Payload used only to [Payload.Check] bodies.
func NewPayload(enc *Encryptor, fields ...string) (*Payload, error) {
	p := &Payload{enc: enc}
	include := false
	for _, f := range fields {
		pat, err := compilePattern(f)
		if err != nil {
			return nil, err
		}
		include = include || !pat.exclude
		p.patterns = append(p.patterns, pat)
	}
	if !include {
		return nil, errors.New("e2ee: no field pattern designates anything")
	}
	return p, nil
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
		name, err := unescapeToken(tok)
		if err != nil {
			return false
		}
		toks = append(toks, name)
	}
	return p.designates(toks)
}

// designates reports whether p designates the value whose path is toks.
func (p *Payload) designates(toks []string) bool {
	included := false
	for _, pat := range p.patterns {
		if len(pat.segs) != len(toks) || !pat.matchTokens(toks) {
			continue
		}
		if pat.exclude {
			return false
		}
		included = true
	}
	return included
}

// reachesParam reports whether p designates the query parameter name, or
// goes through it to designate a value below it: name read as a top-level
// member ("password"), in lower case, and as the path its brackets or dots
// write ("fields[website]", "fields.website").
func (p *Payload) reachesParam(name string) bool {
	readings := [][]string{{name}, {strings.ToLower(name)}}
	if strings.ContainsAny(name, "[.") {
		var toks []string
		for tok := range strings.FieldsFuncSeq(name, func(r rune) bool { return r == '[' || r == ']' || r == '.' }) {
			toks = append(toks, tok)
		}
		if strings.HasSuffix(name, "[]") {
			toks = append(toks, "0")
		}
		if len(toks) > 0 {
			readings = append(readings, toks)
		}
	}
	for _, toks := range readings {
		if p.designates(toks) {
			return true
		}
		for _, pat := range p.patterns {
			if prefix := (pattern{segs: pat.segs[:min(len(toks), len(pat.segs))]}); !pat.exclude &&
				len(pat.segs) > len(toks) && prefix.matchTokens(toks) {
				return true
			}
		}
	}
	return false
}

// matchTokens reports whether every segment of pat matches the token at its
// depth; the caller checks that there are as many tokens as segments.
func (pat pattern) matchTokens(toks []string) bool {
	for i, seg := range pat.segs {
		if !seg.matchName([]byte(toks[i])) {
			return false
		}
	}
	return true
}

// literalAt reports whether some pattern names the member name at path
// depth depth (0 for a top-level member) literally, not with "*".
func (p *Payload) literalAt(depth int, name string) bool {
	for _, pat := range p.patterns {
		if len(pat.segs) > depth && !pat.segs[depth].wild && pat.segs[depth].name == name {
			return true
		}
	}
	return false
}

// compilePattern parses one field pattern.
func compilePattern(f string) (pattern, error) {
	var pat pattern
	src := f
	if rest, ok := strings.CutPrefix(f, "!"); ok {
		pat.exclude, src = true, rest
	}
	if !strings.HasPrefix(src, "/") {
		return pattern{}, fmt.Errorf("e2ee: field pattern %q: want a JSON Pointer starting with /", f)
	}
	for tok := range strings.SplitSeq(src[1:], "/") {
		name, err := unescapeToken(tok)
		if err != nil {
			return pattern{}, fmt.Errorf("e2ee: field pattern %q: %w", f, err)
		}
		seg := segment{name: name, wild: tok == "*", index: -1}
		if i, err := strconv.Atoi(tok); err == nil && i >= 0 && strconv.Itoa(i) == tok {
			seg.index, seg.hasIndex = i, true
		}
		pat.segs = append(pat.segs, seg)
	}
	return pat, nil
}

// unescapeToken resolves the ~0 and ~1 escapes of an RFC 6901 reference token.
func unescapeToken(tok string) (string, error) {
	if !strings.Contains(tok, "~") {
		return tok, nil
	}
	var b strings.Builder
	for i := 0; i < len(tok); i++ {
		if tok[i] != '~' {
			b.WriteByte(tok[i])
			continue
		}
		if i+1 == len(tok) || (tok[i+1] != '0' && tok[i+1] != '1') {
			return "", errors.New("~ must be followed by 0 or 1")
		}
		b.WriteByte("~/"[tok[i+1]-'0'])
		i++
	}
	return b.String(), nil
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
	w := p.walk(body, false, false)
	defer w.release()
	if w.err != nil {
		return nil, "", w.err
	}
	if w.jwe != "" && !allowJWE {
		return nil, "", fmt.Errorf("%w: %s: a JWE is as good as the credential it holds, and one copied "+
			"from a log would be replayed (a route lets JWEs through with AllowJWE, for a user interface "+
			"that encrypts values itself)", ErrAlreadyEncrypted, w.jwe)
	}
	if len(w.found) == 0 {
		return [][]byte{body}, "", nil
	}
	if p.enc == nil {
		return nil, "", errors.New("e2ee: Payload has no Encryptor")
	}
	ke, err := p.enc.current(ctx)
	if err != nil {
		return nil, "", err
	}

	jwes, err := encryptAll(ctx, ke, w.found, p.workerCount())
	if err != nil {
		return nil, "", err
	}

	parts := make([][]byte, 0, 2*len(w.found)+1)
	last := 0
	for i, f := range w.found {
		parts = append(parts, body[last:f.start], []byte(`"`+jwes[i]+`"`))
		last = f.end
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
func encryptAll(ctx context.Context, ke *keyEncrypter, found []found, workers int) ([]string, error) {
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
			if jwes[i], errs[i] = ke.encrypt(found[i].plain); errs[i] != nil {
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
	w := p.walk(body, true, false)
	defer w.release()
	if w.err != nil {
		return w.err
	}
	return checkError(w.cleartext, nil)
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
	w := p.walk(body, true, true)
	defer w.release()
	if w.err != nil {
		return w.err
	}
	keys := make(map[string]*Key)
	var foreign []string
	for _, j := range w.jwes {
		k, seen := keys[j.info.Kid]
		if !seen {
			var err error
			if k, err = p.enc.keyByID(ctx, j.info.Kid); err != nil {
				return err
			}
			keys[j.info.Kid] = k
		}
		switch {
		case k == nil:
			foreign = append(foreign, j.pointer+" (a kid the key source does not know)")
		case !madeWith(j.info, k):
			foreign = append(foreign, j.pointer+" (does not fit the key its kid names)")
		}
	}
	return checkError(w.cleartext, foreign)
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

// walker is the state of one pass over a body.
type walker struct {
	p     *Payload
	body  []byte
	check bool // collect cleartext pointers instead of failing on non-strings
	keyed bool // with check, collect the designated JWEs, for their keys to be checked
	count int  // designated values so far

	buf  bytes.Buffer
	dec  *jsontext.Decoder
	live []int32 // a stack of sets of pattern indices, one set per open level
	name []byte  // scratch for unescaped member names

	found     []found  // designated strings to encrypt, in body order
	cleartext []string // with check: pointers of designated values in cleartext
	jwe       string   // without check: the pointer of the first designated JWE
	jwes      []jweRef // with keyed: the designated JWEs, in body order
	err       error
}

// jweRef is a designated JWE of a body and its JSON Pointer.
type jweRef struct {
	pointer string
	info    jwe.Info
}

// found is a designated string: its bytes, quotes included, are
// body[start:end]; plain is its decoded value, a copy when owned and else a
// slice of the body.
type found struct {
	start, end int
	plain      []byte
	owned      bool
}

var walkers = sync.Pool{New: func() any {
	w := new(walker)
	w.dec = jsontext.NewDecoder(&w.buf)
	return w
}}

// walk reads body once, recording designated strings (or, with check,
// designated values in cleartext).
//
// It tracks, for each open object or array, the patterns whose segments
// match the path so far, and skips whole values that no pattern can reach
// with SkipValue: that is what keeps the pass close to the cost of
// validation. The jsontext decoder reads directly from the body's bytes.
func (p *Payload) walk(body []byte, check, keyed bool) *walker {
	w := walkers.Get().(*walker)
	w.p, w.body, w.check, w.keyed, w.count = p, body, check, keyed, 0
	w.buf = *bytes.NewBuffer(body)
	w.dec.Reset(&w.buf, jsontext.AllowDuplicateNames(true))

	w.live = w.live[:0]
	for i := range p.patterns {
		w.live = append(w.live, int32(i))
	}
	w.err = w.value(0, 0, len(w.live))
	if w.err == nil {
		switch _, err := w.dec.ReadToken(); {
		case err == nil:
			w.err = errors.New("e2ee: trailing data after the JSON value")
		case err != io.EOF:
			w.err = syntaxError(err, "trailing data after the JSON value")
		}
	}
	return w
}

// release clears plaintext copies and returns w to the pool.
func (w *walker) release() {
	for _, f := range w.found {
		if f.owned {
			clear(f.plain)
		}
	}
	w.found = w.found[:0]
	w.cleartext, w.jwe = nil, ""
	clear(w.name)
	w.p, w.body, w.err = nil, nil, nil
	w.jwes = w.jwes[:0]
	w.buf = bytes.Buffer{}
	w.dec.Reset(&w.buf) // drop every reference to body
	walkers.Put(w)
}

// value handles the next value, reached through a path matched so far by
// the patterns w.live[lo:hi], at depth (path length) depth.
func (w *walker) value(depth, lo, hi int) error {
	designated, descend := false, false
	excluded := false
	for _, i := range w.live[lo:hi] {
		pat := &w.p.patterns[i]
		switch n := len(pat.segs); {
		case n == depth && pat.exclude:
			excluded = true
		case n == depth:
			designated = true
		case n > depth && !pat.exclude:
			descend = true
		}
	}
	designated = designated && !excluded

	kind := w.dec.PeekKind()
	switch {
	case designated:
		return w.designated(kind)
	case descend && kind == '{':
		return w.object(depth, lo, hi)
	case descend && kind == '[' && !w.p.objectsOnly:
		return w.array(depth, lo, hi)
	case descend && (kind != 'n' || depth == 0):
		return w.shapeError(kind, depth)
	default:
		if err := w.dec.SkipValue(); err != nil {
			return syntaxError(err, "")
		}
		return nil
	}
}

// shapeError is the error of a value of kind, at depth, that patterns go
// through but that cannot hold their values.
func (w *walker) shapeError(kind jsontext.Kind, depth int) error {
	if err := w.dec.SkipValue(); err != nil {
		return syntaxError(err, "")
	}
	what, want := "the body", "an object or an array"
	if depth > 0 {
		what = w.pointer()
	}
	if w.p.objectsOnly {
		want = "an object"
	}
	if kind == '"' {
		if depth == 0 {
			what = "the body is a JSON string"
		} else {
			what += " is a string"
		}
		return shapeError(fmt.Sprintf("%s, not %s: was it stringified twice?", what, want))
	}
	return shapeError(fmt.Sprintf("%s is %s, not %s", what, kindName(kind), want))
}

func (w *walker) designated(kind jsontext.Kind) error {
	if w.count++; w.count > w.p.maxValueCount() {
		return fmt.Errorf("%w: the body designates more than %d", ErrTooManyValues, w.p.maxValueCount())
	}
	v, err := w.dec.ReadValue()
	if err != nil {
		return syntaxError(err, "")
	}
	switch kind {
	case 'n':
		return nil
	case '"':
	default:
		ptr := w.pointer()
		if w.check {
			w.cleartext = append(w.cleartext, fmt.Sprintf("%s (%s)", ptr, kindName(kind)))
			return nil
		}
		return fmt.Errorf("%w: %s is %s", ErrNotString, ptr, kindName(kind))
	}
	end := int(w.dec.InputOffset())
	start := end - len(v)
	plain, owned := w.body[start+1:end-1:end-1], false
	if bytes.IndexByte(plain, '\\') >= 0 {
		if plain, err = jsontext.AppendUnquote(nil, v); err != nil {
			return syntaxError(err, "")
		}
		owned = true
	}
	if bytes.Count(plain, []byte{'.'}) == 4 {
		if info, ok := jwe.Parse(string(plain)); ok {
			if !w.check && w.jwe == "" {
				w.jwe = w.pointer()
			}
			if w.keyed {
				w.jwes = append(w.jwes, jweRef{w.pointer(), info})
			}
			return nil
		}
	}
	if w.check {
		w.cleartext = append(w.cleartext, w.pointer())
		if owned {
			clear(plain)
		}
		return nil
	}
	w.found = append(w.found, found{start: start, end: end, plain: plain, owned: owned})
	return nil
}

func (w *walker) object(depth, lo, hi int) error {
	if _, err := w.dec.ReadToken(); err != nil {
		return syntaxError(err, "")
	}
	for w.dec.PeekKind() != '}' {
		raw, err := w.dec.ReadValue()
		if err != nil {
			return syntaxError(err, "")
		}
		name := raw[1 : len(raw)-1]
		if bytes.IndexByte(name, '\\') >= 0 {
			if w.name, err = jsontext.AppendUnquote(w.name[:0], raw); err != nil {
				return syntaxError(err, "")
			}
			name = w.name
		}
		if err := w.child(depth, lo, hi, func(s segment) bool { return s.matchName(name) }); err != nil {
			return err
		}
	}
	if _, err := w.dec.ReadToken(); err != nil {
		return syntaxError(err, "")
	}
	return nil
}

func (w *walker) array(depth, lo, hi int) error {
	if _, err := w.dec.ReadToken(); err != nil {
		return syntaxError(err, "")
	}
	for i := 0; w.dec.PeekKind() != ']'; i++ {
		if err := w.child(depth, lo, hi, func(s segment) bool { return s.matchIndex(i) }); err != nil {
			return err
		}
	}
	if _, err := w.dec.ReadToken(); err != nil {
		return syntaxError(err, "")
	}
	return nil
}

// child walks the value one level below depth with, as live patterns, those
// of w.live[lo:hi] whose segment at that depth match accepts.
func (w *walker) child(depth, lo, hi int, match func(segment) bool) error {
	top := len(w.live)
	for _, i := range w.live[lo:hi] {
		if segs := w.p.patterns[i].segs; len(segs) > depth && match(segs[depth]) {
			w.live = append(w.live, i)
		}
	}
	err := w.value(depth+1, top, len(w.live))
	w.live = w.live[:top]
	return err
}

// pointer returns the JSON Pointer of the value just read, each member name
// in it shown only when a pattern names it literally at that depth, and as
// "*" otherwise; array indices show as they are.
func (w *walker) pointer() string {
	var b strings.Builder
	depth := 0
	for tok := range w.dec.StackPointer().Tokens() {
		b.WriteByte('/')
		switch {
		case w.inArray(depth) && isIndex(tok):
			b.WriteString(tok)
		case w.p.literalAt(depth, tok) && printable(tok):
			b.WriteString(strings.NewReplacer("~", "~0", "/", "~1").Replace(tok))
		default:
			b.WriteByte('*')
		}
		depth++
	}
	return b.String()
}

// inArray reports whether the token at depth of the decoder's stack pointer
// is an array index.
func (w *walker) inArray(depth int) bool {
	kind, _ := w.dec.StackIndex(depth + 1)
	return kind == '['
}

// isIndex reports whether tok is an array index: decimal digits.
func isIndex(tok string) bool {
	return tok != "" && strings.Trim(tok, "0123456789") == ""
}

// printable reports whether s has no control or other non-printing character.
func printable(s string) bool {
	return !strings.ContainsFunc(s, func(r rune) bool { return !unicode.IsPrint(r) })
}

func kindName(k jsontext.Kind) string {
	switch k {
	case '0':
		return "a number"
	case 't', 'f':
		return "a boolean"
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 'n':
		return "null"
	}
	return "not a string"
}

// syntaxError describes a JSON decoding error by its byte offset only. The
// decoder's own message, and the JSON Pointer it gives, may quote bytes of
// the body (a credential with a stray quote can turn into a member name), so
// neither is kept, not even as a wrapped error.
func syntaxError(err error, what string) error {
	if err == nil {
		return nil
	}
	if what == "" {
		what = "body is not valid JSON"
	}
	var se *jsontext.SyntacticError
	switch {
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return &jsonError{msg: "body is not valid JSON: unexpected end of input", err: io.ErrUnexpectedEOF}
	case errors.As(err, &se):
		return &jsonError{msg: fmt.Sprintf("%s (at byte offset %d)", what, se.ByteOffset)}
	}
	return &jsonError{msg: what}
}
