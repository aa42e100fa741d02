package jsonwalk

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestWalk(t *testing.T) {
	for _, tt := range []struct {
		body string
		want string // the visits, "pointer kind raw" each, separated by "; "
		err  error  // nil, ErrUnexpectedEnd, ErrTrailingData, or a *SyntaxError with this offset
	}{
		{``, ``, nil},
		{`  `, ``, nil},
		{`"x"`, ` " "x"`, nil},
		{`{"a": 1, "b": [true, null, "s"], "a": {"c~/d": "v"}}`,
			` { ; /a 0 1; /b [ ; /b/0 t true; /b/1 n null; /b/2 " "s"; /a { ; /a/c~0~1d " "v"`, nil},
		{`[[], {}]`, ` [ ; /0 [ ; /1 { `, nil},
		{`{"a": 1`, ` { ; /a 0 1`, ErrUnexpectedEnd},
		{`{"a": 1} {}`, ` { ; /a 0 1`, ErrTrailingData},
		{`{"a": tru}`, ` { `, &SyntaxError{Offset: 9}},
		{`{"login": "hunter2" "password": 1}`, ` { ; /login " "hunter2"`, &SyntaxError{Offset: 20}},
	} {
		t.Run(tt.body, func(t *testing.T) {
			var got []string
			err := Walk([]byte(tt.body), func(v Value) {
				got = append(got, fmt.Sprintf("%s %c %s", v.Pointer, v.Kind, v.Raw))
				if v.Raw != nil && tt.body[v.Start:v.End()] != string(v.Raw) {
					t.Errorf("value at %s: Start %d, End %d do not frame %s", v.Pointer, v.Start, v.End(), v.Raw)
				}
			})
			if s := strings.Join(got, "; "); s != tt.want {
				t.Errorf("Walk(%s) visits %q; want %q", tt.body, s, tt.want)
			}
			var se, want *SyntaxError
			switch {
			case errors.As(tt.err, &want):
				if !errors.As(err, &se) || se.Offset != want.Offset {
					t.Errorf("Walk(%s) = %v; want a SyntaxError at %d", tt.body, err, want.Offset)
				}
			case err != tt.err:
				t.Errorf("Walk(%s) = %v; want %v", tt.body, err, tt.err)
			}
			if err != nil && strings.Contains(err.Error(), "hunter2") {
				t.Errorf("Walk error %q quotes the body", err)
			}
		})
	}
}
