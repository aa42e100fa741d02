package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// raw returns benchmark output of rounds rounds, as bench/run appends it:
// each benchmark named in ns once per round, with round r's time of
// benchmark b given by ns[b](r).
func raw(rounds int, ns map[string]func(r int) float64, extra map[string]string) string {
	var b strings.Builder
	for r := range rounds {
		b.WriteString("goos: linux\ngoarch: amd64\npkg: github.com/credseal/e2ee/bench\ncpu: Test CPU @ 1 GHz\n")
		for name, f := range ns {
			fmt.Fprintf(&b, "Benchmark%s-2 \t 100\t %.1f ns/op\t 7608 B/op\t 75 allocs/op%s\n", name, f(r), extra[name])
		}
		b.WriteString("PASS\n")
	}
	return b.String()
}

func constant(v float64) func(int) float64 { return func(int) float64 { return v } }

func TestRatioIsTheMedianOfRoundRatios(t *testing.T) {
	// Rounds 0 and 1 differ tenfold in load and agree on 1.1; round 2 is
	// an outlier at 2.0. The median of the ratios within rounds is 1.1,
	// where the ratio of the medians (200 ns / 100 ns) would be 2.0.
	res := &results{values: map[string]map[string][]float64{}}
	a, b := []float64{110, 1100, 200}, []float64{100, 1000, 100}
	in := raw(3, map[string]func(int) float64{
		"Encrypt/2048bit/SDK":    func(r int) float64 { return a[r] },
		"Encrypt/2048bit/GoJose": func(r int) float64 { return b[r] },
	}, nil)
	if err := res.read(strings.NewReader(in), "in"); err != nil {
		t.Fatal(err)
	}
	if got, ok := res.ratio("Encrypt/2048bit/SDK", "Encrypt/2048bit/GoJose", "sec/op"); !ok || fmt.Sprintf("%.3f", got) != "1.100" {
		t.Errorf("ratio = %v, %v; want 1.100, true", got, ok)
	}
	if got, ok := res.median("Encrypt/2048bit/SDK", "sec/op"); !ok || fmt.Sprintf("%.3g", got) != "2e-07" {
		t.Errorf("median = %v, %v; want 2e-07, true", got, ok)
	}
	if got := res.rounds(); got != 3 {
		t.Errorf("rounds() = %d; want 3", got)
	}
	if res.gomaxprocs != "2" || res.cpu != "Test CPU @ 1 GHz" {
		t.Errorf("gomaxprocs, cpu = %q, %q; want \"2\", \"Test CPU @ 1 GHz\"", res.gomaxprocs, res.cpu)
	}
}

func TestRenderStatesTargets(t *testing.T) {
	res := &results{values: map[string]map[string][]float64{}}
	in := raw(3, map[string]func(int) float64{
		"Encrypt/2048bit/SDK":               constant(104),
		"Encrypt/2048bit/GoJose":            constant(100),
		"Encrypt/2048bit/Floor":             constant(80),
		"Body/1MiB/SDK":                     constant(120),
		"Body/1MiB/SDKAppend":               constant(130),
		"Body/1MiB/SkipValue":               constant(100),
		"Concurrency/2048bit/SDKConcurrent": constant(80),
		"Concurrency/2048bit/SDKSequential": constant(100),
		"Concurrency/2048bit/RSAConcurrent": constant(70),
		"Concurrency/2048bit/RSASequential": constant(100),
		"KeyColdBurst/SDK":                  constant(1e6),
	}, map[string]string{"KeyColdBurst/SDK": "\t 1.000 requests/op\t 2500000 p99-ns\t 0 errors/op"})
	if err := res.read(strings.NewReader(in), "in"); err != nil {
		t.Fatal(err)
	}
	got := render(res, "Load: test.")
	for _, want := range []string{
		"| per-field encryption, 2048-bit: SDK ÷ go-jose used directly | 1.04× | ≤ 1.05× | met |",
		"| per-field encryption, 2048-bit: SDK ÷ the crypto floor | 1.30× | ≤ 1.15× | **missed** |",
		"| per-field encryption, 4096-bit: SDK ÷ go-jose used directly | — | ≤ 1.05× | not measured |",
		"| body rewriting, 1 MiB: `Payload.Encrypt` ÷ a bare `jsontext` `SkipValue` pass | 1.20× | ≤ 1.25× | met |",
		"| body rewriting, 1 MiB: `Payload.AppendEncrypt` into a reused buffer ÷ a bare `jsontext` `SkipValue` pass | 1.30× | ≤ 1.25× | **missed** |",
		"| 4 values, 2048-bit: concurrent ÷ sequential, SDK vs bare RSA-OAEP | 0.80 vs 0.70 (0.10 apart) | within 0.05 | **missed** |",
		"| one credential: `Encryptor.EncryptString` | 104 ns, 7,608 B, 75 allocs | — |",
		"| cold burst of 1,000 goroutines: requests, p99 wait, errors | 1, 2.50 ms, 0 |",
		"Machine: Test CPU @ 1 GHz, GOMAXPROCS 2.\nLoad: test.\n",
		"3 rounds interleaved",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("render() lacks %q; got:\n%s", want, got)
		}
	}
}

var update = flag.Bool("update", false, "rewrite the golden files of testdata with render's output")

// TestRenderGolden keeps render's output byte for byte as the golden files
// of testdata have it: for every benchmark it reads (raw.txt: four rounds,
// two benchmarks left out), and for one round with neither machine nor note
// (raw-sparse.txt). go test -update rewrites the golden files.
func TestRenderGolden(t *testing.T) {
	tests := []struct {
		name, raw, note, golden string
	}{
		{"every benchmark", "raw.txt", "Load average (1, 5, 15 min): 0.50 0.40 0.30 at the start.", "section.golden"},
		{"one round, no machine", "raw-sparse.txt", "", "section-sparse.golden"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := readFiles([]string{filepath.Join("testdata", tt.raw)})
			if err != nil {
				t.Fatal(err)
			}
			got := render(res, tt.note)
			golden := filepath.Join("testdata", tt.golden)
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Errorf("render(testdata/%s) =\n%s\nwant (testdata/%s):\n%s", tt.raw, got, tt.golden, want)
			}
		})
	}
}

func TestReplaceSection(t *testing.T) {
	tests := []struct {
		name, in, want string
		wantErr        bool
	}{
		{"replaces", "# T\n\n<!-- bench:start -->\nold\ntable\n<!-- bench:end -->\n\nafter\n",
			"# T\n\n<!-- bench:start -->\nNEW\n<!-- bench:end -->\n\nafter\n", false},
		{"empty section", "<!-- bench:start -->\n<!-- bench:end -->", "<!-- bench:start -->\nNEW\n<!-- bench:end -->", false},
		{"CRLF", "a\r\n<!-- bench:start -->\r\nold\r\n<!-- bench:end -->\r\nb", "a\r\n<!-- bench:start -->\nNEW\n<!-- bench:end -->\r\nb", false},
		{"no start", "<!-- bench:end -->\n", "", true},
		{"no end", "<!-- bench:start -->\n", "", true},
		{"reversed", "<!-- bench:end -->\n<!-- bench:start -->\n", "", true},
		{"twice", "<!-- bench:start -->\n<!-- bench:end -->\n<!-- bench:start -->\n", "", true},
		{"inline", "see <!-- bench:start --> here\n<!-- bench:end -->\n", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := replaceSection([]byte(tt.in), "NEW\n")
			if (err != nil) != tt.wantErr {
				t.Fatalf("replaceSection(%q) error = %v; want error %v", tt.in, err, tt.wantErr)
			}
			if err == nil && string(got) != tt.want {
				t.Errorf("replaceSection(%q) = %q; want %q", tt.in, got, tt.want)
			}
		})
	}
}

// TestBenchREADMEHasTheMarkers checks that bench/README.md, which bench/run
// rewrites, has the markers once each, alone on their lines.
func TestBenchREADMEHasTheMarkers(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := replaceSection(data, "NEW\n"); err != nil {
		t.Errorf("replaceSection(bench/README.md) = %v; want nil", err)
	}
}

func TestRunRewritesOnlyTheSection(t *testing.T) {
	dir := t.TempDir()
	readme := filepath.Join(dir, "README.md")
	before, after := "# e2ee\n\n## Performance\n\nintro\n\n", "\n- a note that stays\n\n## Security\n"
	if err := os.WriteFile(readme, []byte(before+"<!-- bench:start -->\nold table\n<!-- bench:end -->\n"+after), 0o644); err != nil {
		t.Fatal(err)
	}
	results := filepath.Join(dir, "raw.txt")
	in := raw(2, map[string]func(int) float64{"Encrypt/2048bit/SDK": constant(100), "Encrypt/2048bit/GoJose": constant(100)}, nil)
	if err := os.WriteFile(results, []byte(in), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"-readme", readme, "-note", "Load: none.", results}, &stdout, &stderr); code != 0 {
		t.Fatalf("run = %d; want 0 (stderr %q)", code, stderr.String())
	}
	got, err := os.ReadFile(readme)
	if err != nil {
		t.Fatal(err)
	}
	want := before + "<!-- bench:start -->\n" + strings.TrimRight(stdout.String(), "\n") + "\n<!-- bench:end -->\n" + after
	if string(got) != want {
		t.Errorf("README after run:\n%s\nwant:\n%s", got, want)
	}
	if !strings.Contains(string(got), "| 1.00× | ≤ 1.05× | met |") {
		t.Errorf("README lacks the go-jose target, met:\n%s", got)
	}

	// Running again gives the same file.
	if code := run([]string{"-readme", readme, "-note", "Load: none.", results}, &stdout, &stderr); code != 0 {
		t.Fatalf("second run = %d; want 0 (stderr %q)", code, stderr.String())
	}
	again, _ := os.ReadFile(readme)
	if !bytes.Equal(again, got) {
		t.Errorf("a second run changed the README:\n%s", again)
	}
}

func TestRunRefuses(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.txt")
	os.WriteFile(empty, []byte("PASS\n"), 0o644)
	noMarkers := filepath.Join(dir, "README.md")
	os.WriteFile(noMarkers, []byte("# no markers\n"), 0o644)
	results := filepath.Join(dir, "raw.txt")
	os.WriteFile(results, []byte(raw(1, map[string]func(int) float64{"Encrypt/2048bit/SDK": constant(1)}, nil)), 0o644)
	for _, tt := range []struct {
		name string
		args []string
		want int
	}{
		{"no input", nil, 2},
		{"no results", []string{empty}, 1},
		{"missing file", []string{filepath.Join(dir, "nope.txt")}, 1},
		{"README without markers", []string{"-readme", noMarkers, results}, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if got := run(tt.args, &stdout, &stderr); got != tt.want {
				t.Errorf("run(%q) = %d; want %d", tt.args, got, tt.want)
			}
		})
	}
	if data, _ := os.ReadFile(noMarkers); string(data) != "# no markers\n" {
		t.Errorf("README without markers was changed: %q", data)
	}
}
