// Command report turns the raw output of the bench module's benchmarks into
// the performance section of bench/README.md: medians, the ratios that the
// targets are stated in, and whether each target is met.
//
// Usage:
//
//	report [-readme path] [-note text] results.txt...
//
// It reads results in the Go benchmark format, as bench/run appends them
// (every benchmark once per round), prints the section on standard output
// and, with -readme, replaces what lies between the lines
// "<!-- bench:start -->" and "<!-- bench:end -->" of that file with it.
//
// Figures are medians over rounds. A ratio is the median, over rounds, of
// the ratio within one round (the i-th result of one benchmark over the
// i-th of the other): on a shared machine whose load drifts, that cancels
// more of the drift than a ratio of medians would.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/perf/benchfmt"
)

// The markers around the generated section of the README (bench/README.md,
// as bench/run gives it).
const (
	startMarker = "<!-- bench:start -->"
	endMarker   = "<!-- bench:end -->"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is the command, with its arguments and output streams.
func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	readme := fs.String("readme", "", "rewrite the section between the bench markers of this `file`")
	note := fs.String("note", "", "a line to add under the tables, such as the machine's load")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: report [-readme path] [-note text] results.txt...")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	res, err := readFiles(fs.Args())
	if err != nil {
		fmt.Fprintln(stderr, "report:", err)
		return 1
	}
	section := render(res, *note)
	fmt.Fprint(stdout, section)
	if *readme != "" {
		if err := rewrite(*readme, section); err != nil {
			fmt.Fprintln(stderr, "report:", err)
			return 1
		}
	}
	return 0
}

// results holds every value read, by benchmark and unit, in the order read.
type results struct {
	values     map[string]map[string][]float64 // name without "Benchmark" and GOMAXPROCS -> unit -> values
	cpu        string
	gomaxprocs string
}

// readFiles reads the results of the named files.
func readFiles(names []string) (*results, error) {
	res := &results{values: map[string]map[string][]float64{}}
	for _, name := range names {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		err = res.read(f, name)
		f.Close()
		if err != nil {
			return nil, err
		}
	}
	if len(res.values) == 0 {
		return nil, errors.New("no benchmark results")
	}
	return res, nil
}

// read adds the results of r, named name in errors.
func (res *results) read(r io.Reader, name string) error {
	br := benchfmt.NewReader(r, name)
	for br.Scan() {
		switch rec := br.Result().(type) {
		case *benchfmt.SyntaxError:
			return rec
		case *benchfmt.Result:
			base, parts := rec.Name.Parts()
			key := strings.TrimPrefix(string(base), "Benchmark")
			for _, p := range parts {
				if p[0] == '-' {
					res.gomaxprocs = string(p[1:])
					continue
				}
				key += string(p)
			}
			if cpu := rec.GetConfig("cpu"); cpu != "" {
				res.cpu = strings.TrimSpace(cpu)
			}
			units := res.values[key]
			if units == nil {
				units = map[string][]float64{}
				res.values[key] = units
			}
			for _, v := range rec.Values {
				units[v.Unit] = append(units[v.Unit], v.Value)
			}
		}
	}
	return br.Err()
}

// rounds returns how many results the benchmark with the most has.
func (res *results) rounds() int {
	n := 0
	for _, units := range res.values {
		n = max(n, len(units["sec/op"]))
	}
	return n
}

// median returns the median of name's values in unit.
func (res *results) median(name, unit string) (float64, bool) {
	return median(res.values[name][unit])
}

// ratio returns the median over rounds of num's value in unit over den's.
func (res *results) ratio(num, den, unit string) (float64, bool) {
	a, b := res.values[num][unit], res.values[den][unit]
	var rs []float64
	for i := range min(len(a), len(b)) {
		if b[i] != 0 {
			rs = append(rs, a[i]/b[i])
		}
	}
	return median(rs)
}

func median(xs []float64) (float64, bool) {
	if len(xs) == 0 {
		return 0, false
	}
	s := slices.Sorted(slices.Values(xs))
	n := len(s)
	if n%2 == 1 {
		return s[n/2], true
	}
	return (s[n/2-1] + s[n/2]) / 2, true
}

// keySizes are the key sizes of the encryption benchmarks, as their names
// and the tables give them.
var keySizes = []struct{ name, label string }{{"2048bit", "2048-bit"}, {"4096bit", "4096-bit"}}

// The targets, as ratios.
const (
	maxOverGoJose      = 1.05 // SDK per-field encryption over go-jose's
	maxOverFloor       = 1.15 // SDK per-field encryption over the crypto floor
	maxOverSkipValue   = 1.25 // SDK 1 MiB body rewriting over the bare SkipValue pass
	maxConcurrencyDiff = 0.05 // |SDK concurrent/sequential - bare concurrent/sequential|
)

// variant is a row of a table: the benchmark's last name element and what
// the row says it is.
type variant struct{ name, label string }

// The rows of the tables, in order.
var (
	encryptVariants = []variant{
		{"SDK", "one credential: `Encryptor.EncryptString`"},
		{"GoJose", "one credential: go-jose, encrypter built once"},
		{"JWX", "one credential: jwx `jwe.Encrypt`, options built once"},
		{"Floor", "one credential: the crypto floor (`rsa.EncryptOAEP`, AES-256-GCM seal, base64url)"},
	}
	concurrencyVariants = []variant{
		{"SDKConcurrent", "4 values, one `Payload.Encrypt` (concurrent inside)"},
		{"SDKSequential", "4 values, four one-value `Payload.Encrypt`s in a row"},
		{"RSAConcurrent", "4 bare `rsa.EncryptOAEP`, on the SDK's goroutine layout"},
		{"RSASequential", "4 bare `rsa.EncryptOAEP` in a row"},
	}
	bodyVariants = []variant{
		{"SDK", "`Payload.Encrypt`, 3 values (RSA included)"},
		{"SDKAppend", "`Payload.AppendEncrypt`, the same, into a reused buffer"},
		{"SDKWalk", "`Payload.Check`: the same walk, nothing encrypted"},
		{"UnmarshalMarshal", "`json.Unmarshal` into `any` + `json.Marshal`"},
		{"Valid", "`json.Valid`"},
		{"SkipValue", "a bare `jsontext` `SkipValue` pass"},
	}
	// bodySizes are the body benchmarks' sizes, as their names give them.
	bodySizes = []string{"300B", "1MiB"}
	// keyLibraries are the key fetching benchmarks' libraries.
	keyLibraries = []string{"SDK", "Keyfunc", "JWX"}
)

// render returns the README section for res: how it was measured, the
// targets, then a table each for encryption, body rewriting and key
// fetching.
func render(res *results, note string) string {
	var b strings.Builder
	writeIntro(&b, res, note)
	b.WriteString("\n")
	writeTargets(&b, res)
	b.WriteString("\n")
	writeEncryption(&b, res)
	b.WriteString("\n")
	writeBodies(&b, res)
	b.WriteString("\n")
	writeKeyFetching(&b, res)
	return b.String()
}

// writeIntro writes how res was measured: rounds, machine and note.
func writeIntro(b *strings.Builder, res *results, note string) {
	rounds := fmt.Sprintf("%d rounds", res.rounds())
	if res.rounds() == 1 {
		rounds = "1 round"
	}
	fmt.Fprintf(b, "Measured by `bench/run`, %s interleaved: each round runs every\n", rounds)
	b.WriteString("benchmark once, alternating the order of its variants. Figures are medians\n")
	b.WriteString("over rounds; a ratio is the median of the ratios within a round.\n")
	var machine []string
	if res.cpu != "" {
		machine = append(machine, res.cpu)
	}
	if res.gomaxprocs != "" {
		machine = append(machine, "GOMAXPROCS "+res.gomaxprocs)
	}
	if len(machine) > 0 {
		fmt.Fprintf(b, "Machine: %s.\n", strings.Join(machine, ", "))
	}
	if note != "" {
		fmt.Fprintf(b, "%s\n", strings.TrimSpace(note))
	}
}

// writeTargets writes the targets table: each target's ratio, its goal,
// and whether it is met.
func writeTargets(b *strings.Builder, res *results) {
	b.WriteString("| target | measured | goal | |\n| --- | --- | --- | --- |\n")
	writeEncryptionTargets(b, res)
	writeBodyTargets(b, res)
	writeConcurrencyTargets(b, res)
}

// writeEncryptionTargets writes the rows of the per-field encryption
// targets: the SDK over go-jose and over the crypto floor, for each key size.
func writeEncryptionTargets(b *strings.Builder, res *results) {
	for _, ks := range keySizes {
		for _, t := range []struct {
			den, label string
			limit      float64
		}{{"GoJose", "go-jose used directly", maxOverGoJose}, {"Floor", "the crypto floor", maxOverFloor}} {
			r, ok := res.ratio("Encrypt/"+ks.name+"/SDK", "Encrypt/"+ks.name+"/"+t.den, "sec/op")
			targetRow(b, fmt.Sprintf("per-field encryption, %s: SDK ÷ %s", ks.label, t.label),
				fmt.Sprintf("%.2f×", r), ok, r <= t.limit, fmt.Sprintf("≤ %.2f×", t.limit))
		}
	}
}

// writeBodyTargets writes the rows of the body rewriting targets: the SDK
// over a bare SkipValue pass, on the 1 MiB body.
func writeBodyTargets(b *strings.Builder, res *results) {
	for _, v := range []variant{
		{"SDK", "`Payload.Encrypt`"},
		{"SDKAppend", "`Payload.AppendEncrypt` into a reused buffer"},
	} {
		r, ok := res.ratio("Body/1MiB/"+v.name, "Body/1MiB/SkipValue", "sec/op")
		targetRow(b, "body rewriting, 1 MiB: "+v.label+" ÷ a bare `jsontext` `SkipValue` pass",
			fmt.Sprintf("%.2f×", r), ok, r <= maxOverSkipValue, fmt.Sprintf("≤ %.2f×", maxOverSkipValue))
	}
}

// writeConcurrencyTargets writes the rows of the concurrency targets: how
// far the SDK's gain from encrypting concurrently is from bare RSA-OAEP's,
// for each key size.
func writeConcurrencyTargets(b *strings.Builder, res *results) {
	for _, ks := range keySizes {
		p := "Concurrency/" + ks.name + "/"
		sdk, ok1 := res.ratio(p+"SDKConcurrent", p+"SDKSequential", "sec/op")
		bare, ok2 := res.ratio(p+"RSAConcurrent", p+"RSASequential", "sec/op")
		diff := math.Abs(sdk - bare)
		targetRow(b, fmt.Sprintf("4 values, %s: concurrent ÷ sequential, SDK vs bare RSA-OAEP", ks.label),
			fmt.Sprintf("%.2f vs %.2f (%.2f apart)", sdk, bare, diff), ok1 && ok2, diff <= maxConcurrencyDiff,
			fmt.Sprintf("within %.2f", maxConcurrencyDiff))
	}
}

// writeEncryption writes the encryption table: one credential, then four
// values, a column per key size.
func writeEncryption(b *strings.Builder, res *results) {
	b.WriteString("| encryption |")
	var sizes []string
	for _, ks := range keySizes {
		fmt.Fprintf(b, " %s key |", ks.label)
		sizes = append(sizes, ks.name)
	}
	b.WriteString("\n| --- | --- | --- |\n")
	writeRows(b, res, "Encrypt", sizes, encryptVariants)
	writeRows(b, res, "Concurrency", sizes, concurrencyVariants)
}

// writeBodies writes the body rewriting table, a column per body size.
func writeBodies(b *strings.Builder, res *results) {
	b.WriteString("| body rewriting | 300-byte connection body | 1 MiB body |\n| --- | --- | --- |\n")
	writeRows(b, res, "Body", bodySizes, bodyVariants)
}

// writeRows writes a row per variant: its label, then the time and memory
// of benchmark bench/column/variant for each column.
func writeRows(b *strings.Builder, res *results, bench string, columns []string, variants []variant) {
	for _, v := range variants {
		fmt.Fprintf(b, "| %s |", v.label)
		for _, c := range columns {
			fmt.Fprintf(b, " %s |", res.timeMem(bench+"/"+c+"/"+v.name))
		}
		b.WriteString("\n")
	}
}

// writeKeyFetching writes the key fetching table: warm reads, a cold burst
// and a rotation, a column per library.
func writeKeyFetching(b *strings.Builder, res *results) {
	b.WriteString("| key fetching, loopback | SDK `KeyFetcher` | keyfunc v3 | jwx v3 `jwk.Cache` |\n| --- | --- | --- | --- |\n")
	fmt.Fprintf(b, "| warm `Key` | %s | %s (`KeyReadAll`); %s (`KeyRead` by kid) | %s (`Lookup`); %s (`CachedSet`) |\n",
		res.timeAllocs("KeyWarm/SDK"), res.timeAllocs("KeyWarm/KeyfuncReadAll"), res.timeAllocs("KeyWarm/KeyfuncRead"),
		res.timeAllocs("KeyWarm/JWXLookup"), res.timeAllocs("KeyWarm/JWXCachedSet"))
	b.WriteString("| cold burst of 1,000 goroutines: requests, p99 wait, errors |")
	for _, lib := range keyLibraries {
		n := "KeyColdBurst/" + lib
		fmt.Fprintf(b, " %s, %s, %s |", res.count(n, "requests/op"), res.duration(n, "p99-sec"), res.count(n, "errors/op"))
	}
	b.WriteString("\n| rotation mid-burst, 4,000 calls: requests, calls refused once, errors |")
	for _, lib := range keyLibraries {
		n := "KeyRotation/" + lib
		fmt.Fprintf(b, " %s, %s, %s |", res.count(n, "requests/op"), res.count(n, "rejected/op"), res.count(n, "errors/op"))
	}
	b.WriteString("\n")
}

// targetRow writes one row of the targets table.
func targetRow(b *strings.Builder, what, measured string, ok, met bool, goal string) {
	status := "met"
	switch {
	case !ok:
		measured, status = "—", "not measured"
	case !met:
		status = "**missed**"
	}
	fmt.Fprintf(b, "| %s | %s | %s | %s |\n", what, measured, goal, status)
}

// timeMem formats name's median time, memory and allocations.
func (res *results) timeMem(name string) string {
	t, ok := res.median(name, "sec/op")
	if !ok {
		return "—"
	}
	s := formatDuration(t)
	if m, ok := res.median(name, "B/op"); ok {
		s += ", " + formatBytes(m)
	}
	if a, ok := res.median(name, "allocs/op"); ok {
		s += ", " + formatCount(a) + " allocs"
	}
	return s
}

// timeAllocs formats name's median time and allocations.
func (res *results) timeAllocs(name string) string {
	t, ok := res.median(name, "sec/op")
	if !ok {
		return "—"
	}
	s := formatDuration(t)
	if a, ok := res.median(name, "allocs/op"); ok {
		s += ", " + formatCount(a) + " allocs"
	}
	return s
}

// duration formats name's median in unit, a duration in seconds.
func (res *results) duration(name, unit string) string {
	v, ok := res.median(name, unit)
	if !ok {
		return "—"
	}
	return formatDuration(v)
}

// count formats name's median in unit, a count.
func (res *results) count(name, unit string) string {
	v, ok := res.median(name, unit)
	if !ok {
		return "—"
	}
	return formatCount(v)
}

// formatDuration formats seconds with three significant digits.
func formatDuration(sec float64) string {
	switch {
	case sec < 1e-6:
		return sig3(sec*1e9) + " ns"
	case sec < 1e-3:
		return sig3(sec*1e6) + " µs"
	case sec < 1:
		return sig3(sec*1e3) + " ms"
	}
	return sig3(sec) + " s"
}

// sig3 formats x, at least 1, with three significant digits.
func sig3(x float64) string {
	switch {
	case x < 10:
		return fmt.Sprintf("%.2f", x)
	case x < 100:
		return fmt.Sprintf("%.1f", x)
	}
	return fmt.Sprintf("%.0f", x)
}

// formatBytes formats a size: in bytes with thousands separators below
// 1 MiB, else in MiB.
func formatBytes(n float64) string {
	if n >= 1<<20 {
		return fmt.Sprintf("%.2f MiB", n/(1<<20))
	}
	return formatCount(n) + " B"
}

// formatCount formats n, rounded, with thousands separators; a fraction
// below 10 keeps one decimal.
func formatCount(n float64) string {
	if n != math.Trunc(n) && n < 10 {
		return fmt.Sprintf("%.1f", n)
	}
	s := fmt.Sprintf("%.0f", n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// rewrite replaces the lines between the bench markers of the file at path
// with section.
func rewrite(path, section string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	out, err := replaceSection(data, section)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	info, err := os.Stat(path)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".report-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(out); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(info.Mode().Perm()); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// replaceSection returns data with the lines between its start and end
// markers replaced by section. Each marker must appear once, on a line of
// its own, the start before the end.
func replaceSection(data []byte, section string) ([]byte, error) {
	start, err := markerLine(data, startMarker)
	if err != nil {
		return nil, err
	}
	end, err := markerLine(data, endMarker)
	if err != nil {
		return nil, err
	}
	if end < start {
		return nil, fmt.Errorf("%s comes before %s", endMarker, startMarker)
	}
	startEnd := start + len(startMarker)
	var out bytes.Buffer
	out.Write(data[:startEnd])
	out.WriteString("\n")
	out.WriteString(strings.TrimRight(section, "\n"))
	out.WriteString("\n")
	out.Write(data[end:])
	return out.Bytes(), nil
}

// markerLine returns the offset of marker in data, which must be there
// once, alone on its line.
func markerLine(data []byte, marker string) (int, error) {
	i := bytes.Index(data, []byte(marker))
	if i < 0 {
		return 0, fmt.Errorf("no %s line", marker)
	}
	if bytes.Contains(data[i+len(marker):], []byte(marker)) {
		return 0, fmt.Errorf("%s appears more than once", marker)
	}
	lineStart := i == 0 || data[i-1] == '\n'
	rest := data[i+len(marker):]
	lineEnd := len(rest) == 0 || rest[0] == '\n' || bytes.HasPrefix(rest, []byte("\r\n"))
	if !lineStart || !lineEnd {
		return 0, fmt.Errorf("%s is not alone on its line", marker)
	}
	return i, nil
}
