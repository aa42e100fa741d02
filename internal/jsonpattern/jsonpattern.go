// Package jsonpattern designates values of JSON bodies with field patterns
// (JSON Pointers whose segments may be "*", and "!" exclusions) and finds
// them in one pass over a body's bytes, without decoding it into maps: the
// mechanics of the e2ee package's Payload.
package jsonpattern

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"unicode"

	"github.com/credseal/e2ee/internal/jwe"
	"github.com/go-json-experiment/json/jsontext"
)

// The errors of a pattern or a walk that callers branch on; package e2ee
// exports them under the same names.
var (
	ErrNotString     = errors.New("e2ee: designated value is not a string")
	ErrNotJSON       = errors.New("e2ee: body is not JSON")
	ErrBodyShape     = errors.New("e2ee: body is not shaped as its field patterns expect")
	ErrTooManyValues = errors.New("e2ee: too many designated values")
)

// Set is a compiled list of field patterns. It is immutable and safe for
// concurrent use.
type Set struct {
	patterns []pattern
}

// Compile compiles fields, each a pattern as the e2ee package's Payload
// describes. At least one must designate something (not begin with "!").
func Compile(fields []string) (*Set, error) {
	s := &Set{}
	include := false
	for _, f := range fields {
		pat, err := compilePattern(f)
		if err != nil {
			return nil, err
		}
		include = include || !pat.exclude
		s.patterns = append(s.patterns, pat)
	}
	if !include {
		return nil, errors.New("e2ee: no field pattern designates anything")
	}
	return s, nil
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

// Designates reports whether s designates the value whose path is toks.
func (s *Set) Designates(toks []string) bool {
	included := false
	for _, pat := range s.patterns {
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

// ReachesParam reports whether s designates the query parameter name, or
// goes through it to designate a value below it: name read as a top-level
// member ("password"), in lower case, and as the path its brackets or dots
// write ("fields[website]", "fields.website").
func (s *Set) ReachesParam(name string) bool {
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
		if s.Designates(toks) {
			return true
		}
		for _, pat := range s.patterns {
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

// LiteralAt reports whether some pattern names the member name at path
// depth depth (0 for a top-level member) literally, not with "*".
func (s *Set) LiteralAt(depth int, name string) bool {
	for _, pat := range s.patterns {
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
		name, err := UnescapeToken(tok)
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

// UnescapeToken resolves the ~0 and ~1 escapes of an RFC 6901 reference token.
func UnescapeToken(tok string) (string, error) {
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

// Walker is one pass over a body, and what it found. Release it when done.
type Walker struct {
	set   *Set
	opts  Options
	body  []byte
	count int // designated values so far

	buf  bytes.Buffer
	dec  *jsontext.Decoder
	live []int32 // a stack of sets of pattern indices, one set per open level
	name []byte  // scratch for unescaped member names

	// Found are the designated strings to encrypt, in body order.
	Found []Found
	// Cleartext are, with Check, the pointers of designated values in
	// cleartext.
	Cleartext []string
	// FirstJWE is, without Check, the pointer of the first designated JWE.
	FirstJWE string
	// JWEs are, with Keyed, the designated JWEs, in body order.
	JWEs []JWERef
	// Err is why the body could not be walked whole, or nil.
	Err error
}

// JWERef is a designated JWE of a body and its JSON Pointer.
type JWERef struct {
	Pointer string
	Info    jwe.Info
}

// Found is a designated string: its bytes, quotes included, are
// body[Start:End]; Plain is its decoded value, a copy when owned and else a
// slice of the body.
type Found struct {
	Start, End int
	Plain      []byte
	owned      bool
}

var walkers = sync.Pool{New: func() any {
	w := new(Walker)
	w.dec = jsontext.NewDecoder(&w.buf)
	return w
}}

// // It tracks, for each open object or array, the patterns whose segments
// match the path so far, and skips whole values that no pattern can reach
// with SkipValue: that is what keeps the pass close to the cost of
// validation. The jsontext decoder reads directly from the body's bytes.
// Options say what a Walk looks for.
type Options struct {
	Check       bool // collect cleartext pointers instead of failing on non-strings
	Keyed       bool // with Check, collect the designated JWEs, for their keys to be checked
	MaxValues   int  // the designated values a body may have; more is ErrTooManyValues
	ObjectsOnly bool // refuse arrays where patterns go
}

// Walk reads body once, recording its designated strings (or, with Check,
// its designated values in cleartext).
func Walk(s *Set, body []byte, o Options) *Walker {
	w := walkers.Get().(*Walker)
	w.set, w.opts, w.body, w.count = s, o, body, 0
	w.buf = *bytes.NewBuffer(body)
	w.dec.Reset(&w.buf, jsontext.AllowDuplicateNames(true))

	w.live = w.live[:0]
	for i := range s.patterns {
		w.live = append(w.live, int32(i))
	}
	w.Err = w.value(0, 0, len(w.live))
	if w.Err == nil {
		switch _, err := w.dec.ReadToken(); {
		case err == nil:
			w.Err = errors.New("e2ee: trailing data after the JSON value")
		case err != io.EOF:
			w.Err = syntaxError(err, "trailing data after the JSON value")
		}
	}
	return w
}

// Release clears plaintext copies and returns w to the pool: w and what it
// found must not be used after.
func (w *Walker) Release() {
	for _, f := range w.Found {
		if f.owned {
			clear(f.Plain)
		}
	}
	w.Found = w.Found[:0]
	w.Cleartext, w.FirstJWE = nil, ""
	clear(w.name)
	w.set, w.body, w.Err = nil, nil, nil
	w.JWEs = w.JWEs[:0]
	w.buf = bytes.Buffer{}
	w.dec.Reset(&w.buf) // drop every reference to body
	walkers.Put(w)
}

// value handles the next value, reached through a path matched so far by
// the patterns w.live[lo:hi], at depth (path length) depth.
func (w *Walker) value(depth, lo, hi int) error {
	designated, descend := false, false
	excluded := false
	for _, i := range w.live[lo:hi] {
		pat := &w.set.patterns[i]
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
	case descend && kind == '[' && !w.opts.ObjectsOnly:
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
func (w *Walker) shapeError(kind jsontext.Kind, depth int) error {
	if err := w.dec.SkipValue(); err != nil {
		return syntaxError(err, "")
	}
	what, want := "the body", "an object or an array"
	if depth > 0 {
		what = w.pointer()
	}
	if w.opts.ObjectsOnly {
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

func (w *Walker) designated(kind jsontext.Kind) error {
	if w.count++; w.count > w.opts.MaxValues {
		return fmt.Errorf("%w: the body designates more than %d", ErrTooManyValues, w.opts.MaxValues)
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
		if w.opts.Check {
			w.Cleartext = append(w.Cleartext, fmt.Sprintf("%s (%s)", ptr, kindName(kind)))
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
			if !w.opts.Check && w.FirstJWE == "" {
				w.FirstJWE = w.pointer()
			}
			if w.opts.Keyed {
				w.JWEs = append(w.JWEs, JWERef{w.pointer(), info})
			}
			return nil
		}
	}
	if w.opts.Check {
		w.Cleartext = append(w.Cleartext, w.pointer())
		if owned {
			clear(plain)
		}
		return nil
	}
	w.Found = append(w.Found, Found{Start: start, End: end, Plain: plain, owned: owned})
	return nil
}

func (w *Walker) object(depth, lo, hi int) error {
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

func (w *Walker) array(depth, lo, hi int) error {
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
func (w *Walker) child(depth, lo, hi int, match func(segment) bool) error {
	top := len(w.live)
	for _, i := range w.live[lo:hi] {
		if segs := w.set.patterns[i].segs; len(segs) > depth && match(segs[depth]) {
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
func (w *Walker) pointer() string {
	var b strings.Builder
	depth := 0
	for tok := range w.dec.StackPointer().Tokens() {
		b.WriteByte('/')
		switch {
		case w.inArray(depth) && isIndex(tok):
			b.WriteString(tok)
		case w.set.LiteralAt(depth, tok) && Printable(tok):
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
func (w *Walker) inArray(depth int) bool {
	kind, _ := w.dec.StackIndex(depth + 1)
	return kind == '['
}

// isIndex reports whether tok is an array index: decimal digits.
func isIndex(tok string) bool {
	return tok != "" && strings.Trim(tok, "0123456789") == ""
}

// Printable reports whether s has no control or other non-printing character.
func Printable(s string) bool {
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

// jsonError is an invalid-JSON error whose message gives no body bytes.
type jsonError struct {
	msg string
	err error // io.ErrUnexpectedEOF for a truncated body, else nil
}

func (e *jsonError) Error() string { return "e2ee: " + e.msg }

func (e *jsonError) Unwrap() []error {
	if e.err == nil {
		return []error{ErrNotJSON}
	}
	return []error{ErrNotJSON, e.err}
}

// shapeError is the error of a body that is not shaped as its patterns
// expect: its message, wrapping ErrBodyShape.
type shapeError string

func (e shapeError) Error() string { return "e2ee: " + string(e) }

func (e shapeError) Unwrap() error { return ErrBodyShape }
