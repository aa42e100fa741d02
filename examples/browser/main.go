// Command browser shows, on loopback, a login page that encrypts the
// credentials in the browser, so that the backend behind it never holds one
// in cleartext.
//
// It runs three parties in one process (package internal/demo):
//
//   - the page: a plain HTML form that loads e2ee.js (package web) with its
//     integrity attribute, fetches the key from the backend, encrypts the
//     credentials with encryptFields and posts the JSON body;
//   - the backend: it serves the page, the module (web.Handler), the API's
//     key (e2ee.KeyHandler) and forwards the page's posts to the API through
//     an e2ee.Transport with VerifyOnly routes, which refuses (400) any body
//     with a credential in cleartext and forwards nothing then;
//   - the API: an e2eetest server, which decrypts what it receives. The page
//     shows what it received and decrypted, through a demo-only endpoint of
//     the backend (/demo/api) that a real backend would not have.
//
// Run it from the repository's root:
//
//	go run ./examples/browser
//
// It prints the page's URL; -addr sets the address to listen on. Its test
// in Chromium is a module of its own, in the chromium directory.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"time"

	"github.com/credseal/e2ee/examples/browser/internal/demo"
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("browser: ")
	addr := flag.String("addr", "127.0.0.1:0", "loopback address to listen on")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *addr, os.Stdout); err != nil {
		log.Fatal(err)
	}
}

// run serves the demo on addr, a loopback address, until ctx ends, after
// printing its URL to out.
func run(ctx context.Context, addr string, out io.Writer) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("%s is not a loopback address: the demo serves a page with test keys", addr)
	}
	b, err := demo.NewBackend()
	if err != nil {
		return err
	}
	defer b.Close()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	// The backend relays bodies it reads whole: bound the time a slow
	// client may take, so that it cannot hold a connection open.
	srv := &http.Server{Handler: b, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second}
	fmt.Fprintf(out, "browser demo: open http://%s/ (interrupt to stop)\n", ln.Addr())
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(shutdown)
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
