package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/credseal/e2ee/web"
)

func TestRunPrintsItsLoopbackURL(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r, w := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, "127.0.0.1:0", w)
		w.Close()
	}()
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(r).ReadString('\n')
		line <- s
		io.Copy(io.Discard, r)
	}()
	var first string
	select {
	case first = <-line:
	case <-time.After(10 * time.Second):
		t.Fatal("run printed no line in 10 s")
	}
	m := regexp.MustCompile(`^browser demo: open (http://127\.0\.0\.1:\d+/) `).FindStringSubmatch(first)
	if m == nil {
		t.Fatalf("run printed %q; want its loopback URL", first)
	}
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(m[1])
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	integrity := `integrity="` + strings.ReplaceAll(web.Integrity(), "+", "&#43;") + `"`
	if resp.StatusCode != http.StatusOK || !bytes.Contains(page, []byte(integrity)) {
		t.Errorf("GET %s = %s; want the login page, loading the module with its integrity", m[1], resp.Status)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run = %v; want nil once its context ends", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return once its context ended")
	}
}

func TestRunRefusesAnAddressNotOnLoopback(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "192.0.2.1:8080"} {
		if err := run(context.Background(), addr, io.Discard); err == nil || !strings.Contains(err.Error(), "loopback") {
			t.Errorf("run(%q) = %v; want a loopback error", addr, err)
		}
	}
}
