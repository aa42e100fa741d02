package reqbody

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/credseal/e2ee/internal/jsonpattern"
)

// TestReadUpTo checks the reader of request bodies: it returns every byte
// up to its bound, across the growths of its buffer, which starts small
// whatever the bound.
func TestReadUpTo(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789"), 1024) // 10 KiB
	for _, tt := range []struct {
		max  int64
		want int
	}{
		{1 << 20, len(data)},
		{5000, 5000},
		{4096, 4096},
		{1, 1},
	} {
		var offered []int
		r := bytes.NewReader(data)
		got, err := ReadUpTo(readFunc(func(p []byte) (int, error) {
			offered = append(offered, len(p))
			return r.Read(p[:min(len(p), 100)]) // 100 bytes at a time
		}), tt.max)
		if err != nil || !bytes.Equal(got, data[:tt.want]) {
			t.Errorf("ReadUpTo(max %d) = %d bytes, %v; want the first %d", tt.max, len(got), err, tt.want)
		}
		if offered[0] > 4<<10 {
			t.Errorf("ReadUpTo(max %d) first offered %d bytes; want at most 4 KiB", tt.max, offered[0])
		}
	}
}

// readFunc is an io.Reader that is a function.
type readFunc func([]byte) (int, error)

func (f readFunc) Read(p []byte) (int, error) { return f(p) }

// closer records that a body was closed.
type closer struct {
	io.Reader
	closed bool
}

func (c *closer) Close() error { c.closed = true; return nil }

// TestRead checks each outcome of Read, and that it closes the body in
// every case.
func TestRead(t *testing.T) {
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name          string
		ctx           context.Context
		body          io.Reader
		length, limit int64
		want          string // the body read, or the error's text
		tooLarge      bool
	}{
		{"unknown length", context.Background(), strings.NewReader("abc"), -1, 10, "abc", false},
		{"declared length", context.TODO(), strings.NewReader("abc"), 3, 10, "abc", false},
		{"exactly the limit", context.Background(), strings.NewReader("abc"), -1, 3, "abc", false},
		{"declared exactly the limit", context.Background(), strings.NewReader("abc"), 3, 3, "abc", false},
		{"a length of 0 is unknown, as net/http has it", context.Background(), strings.NewReader("abc"), 0, 10, "abc", false},
		{"over the limit", context.Background(), strings.NewReader("abcd"), -1, 3, "request body exceeds the limit of 3 bytes", true},
		{"declared over the limit", context.Background(), strings.NewReader("abcd"), 4, 3, "request body of 4 bytes exceeds the limit of 3", true},
		{"longer than declared", context.Background(), strings.NewReader("abcd"), 3, 10, ErrLongBody.Error(), false},
		{"shorter than declared", context.Background(), strings.NewReader("ab"), 3, 10, "reading request body: unexpected EOF", false},
		{"read error", context.Background(), io.MultiReader(strings.NewReader("ab"), readFunc(func([]byte) (int, error) {
			return 0, errors.New("connection reset")
		})), -1, 10, "reading request body: connection reset", false},
		{"canceled", canceled, readFunc(func([]byte) (int, error) { select {} }), -1, 10, "reading request body: context canceled", false},
	} {
		c := &closer{Reader: tc.body}
		got, err := Read(tc.ctx, c, tc.length, tc.limit)
		var tl *TooLargeError
		switch {
		case err != nil && err.Error() != tc.want, err == nil && string(got) != tc.want:
			t.Errorf("%s: Read = %q, %v; want %q", tc.name, got, err, tc.want)
		case errors.As(err, &tl) != tc.tooLarge:
			t.Errorf("%s: err = %#v; TooLargeError %v", tc.name, err, tc.tooLarge)
		case err != nil && got != nil:
			t.Errorf("%s: Read returned %q with its error", tc.name, got)
		}
		if tc.name == "canceled" && !errors.Is(err, context.Canceled) {
			t.Errorf("%s: err = %v; want it to wrap context.Canceled", tc.name, err)
		}
		if !c.closed {
			t.Errorf("%s: the body was not closed", tc.name)
		}
	}
}

func TestCheckContent(t *testing.T) {
	for _, tc := range []struct {
		header http.Header
		want   string // "" for nil
	}{
		{http.Header{}, ""},
		{http.Header{"Content-Type": {" "}}, ""},
		{http.Header{"Content-Type": {"application/json; charset=utf-8"}}, ""},
		{http.Header{"Content-Type": {"application/vnd.api+json"}}, ""},
		{http.Header{"Content-Encoding": {"identity", ""}}, ""},
		{http.Header{"Content-Encoding": {"gzip"}}, `Content-Encoding is "gzip"`},
		{http.Header{"Content-Type": {"application/json", "application/json"}}, "2 Content-Type headers"},
		{http.Header{"Content-Type": {"json;;"}}, "not a media type"},
		{http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, `Content-Type is "application/x-www-form-urlencoded"`},
		{http.Header{"Content-Type": {"text/json"}}, `Content-Type is "text/json"`},
	} {
		err := CheckContent(tc.header)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("CheckContent(%v) = %v; want nil", tc.header, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, jsonpattern.ErrNotJSON)):
			t.Errorf("CheckContent(%v) = %v; want ErrNotJSON saying %q", tc.header, err, tc.want)
		}
	}
}
