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
	r, w := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, "127.0.0.1:0", w)
		w.Close()
	}()
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	go io.Copy(io.Discard, r)
	m := regexp.MustCompile(`^browser demo: open (http://127\.0\.0\.1:\d+/) `).FindStringSubmatch(line)
	if m == nil {
		cancel()
		t.Fatalf("run printed %q; want its loopback URL", line)
	}
	resp, err := http.Get(m[1])
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Contains(page, []byte(`integrity="`+strings.ReplaceAll(web.Integrity, "+", "&#43;")+`"`)) {
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
