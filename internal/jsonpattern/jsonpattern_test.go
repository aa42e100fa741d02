package jsonpattern

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func mustCompile(t *testing.T, fields ...string) *Set {
	t.Helper()
	s, err := Compile(fields)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestCompile(t *testing.T) {
	for _, tt := range []struct {
		fields []string
		reason string
	}{
		{[]string{"password"}, "want a JSON Pointer"},
		{[]string{"/a~2"}, "~ must be followed by 0 or 1"},
		{[]string{"!/id"}, "no field pattern designates anything"},
		{nil, "no field pattern designates anything"},
	} {
		if _, err := Compile(tt.fields); err == nil || !strings.Contains(err.Error(), tt.reason) {
			t.Errorf("Compile(%q) = %v; want %q", tt.fields, err, tt.reason)
		}
	}
}

func TestSet(t *testing.T) {
	s := mustCompile(t, "/*", "!/id", "/fields/*", "!/fields/pin", "/a~1b")
	for _, tt := range []struct {
		toks []string
		want bool
	}{
		{[]string{"login"}, true},
		{[]string{"id"}, false},
		{[]string{"fields", "website"}, true},
		{[]string{"fields", "pin"}, false},
		{[]string{"a/b"}, true},
		{[]string{"x", "y"}, false},
	} {
		if got := s.Designates(tt.toks); got != tt.want {
			t.Errorf("Designates(%q) = %v; want %v", tt.toks, got, tt.want)
		}
	}
	for name, want := range map[string]bool{"password": true, "id": false, "fields": true, "fields[website]": true, "fields.website": true, "fields[]": true} {
		if got := s.ReachesParam(name); got != want {
			t.Errorf("ReachesParam(%q) = %v; want %v", name, got, want)
		}
	}
	if !s.LiteralAt(0, "id") || !s.LiteralAt(1, "pin") || s.LiteralAt(0, "login") || s.LiteralAt(1, "id") {
		t.Errorf("LiteralAt: want id at 0 and pin at 1 only")
	}
}

func TestWalk(t *testing.T) {
	s := mustCompile(t, "/login", "/list/*", "/n")
	body := []byte(`{"id": 1, "login": "jo\u0065", "list": ["a", null], "n": null}`)
	w := Walk(s, body, Options{MaxValues: 10})
	defer w.Release()
	if w.Err != nil {
		t.Fatal(w.Err)
	}
	var got []string
	for _, f := range w.Found {
		got = append(got, string(body[f.Start:f.End])+"="+string(f.Plain))
	}
	if want := []string{`"jo\u0065"=joe`, `"a"=a`}; !slices.Equal(got, want) {
		t.Errorf("Found %q; want %q", got, want)
	}
}

func TestWalkErrors(t *testing.T) {
	s := mustCompile(t, "/a", "/b", "/fields/*")
	for _, tt := range []struct {
		body   string
		o      Options
		is     error
		reason string
	}{
		{`{"a": 1}`, Options{MaxValues: 10}, ErrNotString, "/a is a number"},
		{`"{\"a\": \"x\"}"`, Options{MaxValues: 10}, ErrBodyShape, "the body is a JSON string, not an object or an array: was it stringified twice?"},
		{`{"fields": "x"}`, Options{MaxValues: 10, ObjectsOnly: true}, ErrBodyShape, "/fields is a string, not an object: was it stringified twice?"},
		{`["x"]`, Options{MaxValues: 10, ObjectsOnly: true}, ErrBodyShape, "the body is an array, not an object"},
		{`{"a": "x", "b": "y"}`, Options{MaxValues: 1}, ErrTooManyValues, "more than 1"},
		{`{"a": "x" "b"}`, Options{MaxValues: 10}, ErrNotJSON, "not valid JSON (at byte offset"},
		{`{"a": "x"} {}`, Options{MaxValues: 10}, nil, "trailing data"},
	} {
		w := Walk(s, []byte(tt.body), tt.o)
		err := w.Err
		w.Release()
		if err == nil || (tt.is != nil && !errors.Is(err, tt.is)) || !strings.Contains(err.Error(), tt.reason) {
			t.Errorf("Walk(%s) = %v; want %v, %q", tt.body, err, tt.is, tt.reason)
		}
	}
	w := Walk(s, []byte(`{"a": "x", "fields": {"hunter2": 2}}`), Options{Check: true, MaxValues: 10})
	defer w.Release()
	if w.Err != nil || !slices.Equal(w.Cleartext, []string{"/a", "/fields/* (a number)"}) {
		t.Errorf("Walk, Check: %v, %q; want /a and /fields/* (a number)", w.Err, w.Cleartext)
	}
}
