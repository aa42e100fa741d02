package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
)

// maxInput bounds what is read from standard input or a key file.
const maxInput = 16 << 20

// readAll reads the file name, or r when name is empty, up to maxInput bytes.
func readAll(name string, r io.Reader) ([]byte, error) {
	if name != "" {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, maxInput+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxInput {
		return nil, fmt.Errorf("larger than %d bytes", maxInput)
	}
	return data, nil
}

// bodyFile returns the name of the file that holds the body, from the
// arguments of encrypt or check, or "" for standard input. A body in a file
// and on standard input both, or in neither, is a usage error; so is an
// argument that is a URL or JSON text rather than a file name. No message
// shows the argument, which may be a credential pasted in the wrong place.
func (o *options) bodyFile(stdin io.Reader) (string, error) {
	switch {
	case len(o.args) > 1:
		return "", usagef("%d arguments: give one BODY file, or the body on standard input", len(o.args))
	case len(o.args) == 0 || o.args[0] == "-":
		if !stdinHasData(stdin) {
			return "", usagef("no body: give a BODY file, or the body on standard input (it is empty or a terminal)")
		}
		return "", nil
	}
	arg := o.args[0]
	if _, ok := keyURL(arg); ok {
		if o.fs.Name() == "check" {
			return "", usagef("the argument is a URL, not a BODY file: check needs no key")
		}
		return "", usagef("the argument is a URL, not a BODY file: give a key URL as --key URL")
	}
	if t := strings.TrimSpace(arg); strings.HasPrefix(t, "{") || strings.HasPrefix(t, "[") || strings.HasPrefix(t, `"`) {
		return "", usagef("the argument is JSON text, not a BODY file name: give the body in a file, or on standard input")
	}
	if stdinHasData(stdin) {
		return "", usagef("two bodies: a BODY file and standard input; give one (a BODY of - reads standard input)")
	}
	return arg, nil
}

// stdinHasData reports whether standard input may hold a body, as far as can
// be told without reading it: not a terminal, nor an empty file. A pipe may
// hold one.
func stdinHasData(r io.Reader) bool {
	switch r := r.(type) {
	case nil:
		return false
	case *os.File:
		fi, err := r.Stat()
		switch {
		case err != nil:
			return false // closed
		case fi.Mode()&os.ModeCharDevice != 0:
			return false // a terminal, or /dev/null
		case fi.Mode().IsRegular():
			return fi.Size() > 0
		}
		return true
	case interface{ Len() int }: // a strings.Reader or bytes.Buffer, in tests
		return r.Len() > 0
	}
	return true
}

// readBody reads the body from the file name, or from stdin when name is "".
// Its messages do not show name.
func readBody(name string, stdin io.Reader) ([]byte, error) {
	body, err := readAll(name, stdin)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // without the name
		}
		if name != "" {
			return nil, fmt.Errorf("e2ee: reading the body file: %w", err)
		}
		return nil, fmt.Errorf("e2ee: reading the body: %w", err)
	}
	return body, nil
}
