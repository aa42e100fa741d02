package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// TestVectorsUpToDate generates the vectors anew and checks that the
// committed ones hold the same keys, cases and bodies (JWEs aside, which
// are random): a case added here and not generated, or a file edited by
// hand, fails.
func TestVectorsUpToDate(t *testing.T) {
	dir := t.TempDir()
	if err := generate(dir); err != nil {
		t.Fatal(err)
	}
	committed := filepath.Join("..", "..", "testdata", "vectors")
	for _, kf := range keyFiles {
		var got, want jweFile
		read(t, filepath.Join(dir, kf.file), &got)
		read(t, filepath.Join(committed, kf.file), &want)
		if got.Note != want.Note || got.Key != want.Key {
			t.Errorf("%s: note or key differs from what vectorsgen writes: run go run ./tools/vectorsgen", kf.file)
		}
		if len(got.Cases) != len(want.Cases) {
			t.Errorf("%s: %d cases; vectorsgen writes %d", kf.file, len(want.Cases), len(got.Cases))
			continue
		}
		for i := range got.Cases {
			g, w := got.Cases[i], want.Cases[i]
			if g.Name != w.Name || g.Plaintext != w.Plaintext {
				t.Errorf("%s: case %d is %q %.20q; vectorsgen writes %q %.20q", kf.file, i, w.Name, w.Plaintext, g.Name, g.Plaintext)
			}
		}
	}
	var got, want bodiesFile
	read(t, filepath.Join(dir, "bodies.json"), &got)
	read(t, filepath.Join(committed, "bodies.json"), &want)
	if got.Note != want.Note || got.Kid != want.Kid || len(got.Bodies) != len(want.Bodies) {
		t.Fatalf("bodies.json: note, kid or number of bodies differs from what vectorsgen writes")
	}
	for i := range got.Bodies {
		g, w := got.Bodies[i], want.Bodies[i]
		if g.Name != w.Name || !reflect.DeepEqual(g.Patterns, w.Patterns) {
			t.Errorf("bodies.json: body %d is %q %q; vectorsgen writes %q %q", i, w.Name, w.Patterns, g.Name, g.Patterns)
		}
		if g.Before != w.Before && g.Name != "already-encrypted" { // its before holds a JWE
			t.Errorf("bodies.json: %s: before differs from what vectorsgen writes", w.Name)
		}
	}
}

func read(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
