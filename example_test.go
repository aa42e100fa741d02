package e2ee_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"log"
	"os"
	"strings"

	"github.com/credseal/e2ee"
)

// The API's public key, as GET /2.0/publickey serves it. Here a fixture in
// the provider's shape: 4096 bits, use enc, alg RSA-OAEP, a thumbprint kid.
func ExampleParseKey() {
	data, err := os.ReadFile("testdata/provider-key.json")
	if err != nil {
		log.Fatal(err)
	}
	key, err := e2ee.ParseKey(data)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(key.ID)
	fmt.Println(key.PublicKey.N.BitLen(), "bits")
	// Output:
	// KHSzzFCf7zxjrtBpmuC_FctmYfnTkc_BNwJkJqcIIIc
	// 4096 bits
}

func ExampleEncryptor() {
	data, err := os.ReadFile("testdata/key.json")
	if err != nil {
		log.Fatal(err)
	}
	key, err := e2ee.ParseKey(data)
	if err != nil {
		log.Fatal(err)
	}
	enc := e2ee.NewEncryptor(e2ee.StaticKey(key))

	jwe, err := enc.EncryptString(context.Background(), "hunter2")
	if err != nil {
		log.Fatal(err)
	}
	// Five base64url parts; the first is the protected header.
	header, _ := base64.RawURLEncoding.DecodeString(strings.Split(jwe, ".")[0])
	fmt.Println(string(header))
	fmt.Println(e2ee.IsJWE(jwe))
	// Output:
	// {"alg":"RSA-OAEP-256","enc":"A256GCM","kid":"E881zqO1Ahiqq8t5xRuYI-MH1DK7XI8yTG0eQHOriNQ"}
	// true
}

func ExampleIsJWE() {
	fmt.Println(e2ee.IsJWE("hunter2"))
	fmt.Println(e2ee.IsJWE("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl")) // a JWS
	// Output:
	// false
	// false
}

func ExampleStaticKey() {
	// A key under 2048 bits, or without a kid, is refused when used.
	src := e2ee.StaticKey(&e2ee.Key{ID: ""})
	_, err := src.Key(context.Background())
	fmt.Println(err)
	// Output: e2ee: unsuitable key: kid is empty
}
