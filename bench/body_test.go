package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/credseal/e2ee"
	"github.com/credseal/e2ee/powens"
	"github.com/go-json-experiment/json/jsontext"
)

// connectionBody300 is a connection body of about 300 bytes, as the SDK's
// payload tests have it: connectionFields designates its login, password
// and comment.
const connectionBody300 = `{"id_connector": 40, "connector_uuid": "338178e6-3d01-564f-9a7b-52ca442459bf", "source": "directaccess", "login": "john.doe@example.org", "password": "correct horse battery staple", "id_provider": 7, "id_bank": 8, "comment": "a request body of about three hundred bytes, like a real one"}`

// connectionFields are the field patterns of the API's connection request,
// as package powens has them.
var connectionFields = powens.Fields(powens.ConnectionCreate)

// largeBody returns a JSON object of about size bytes: three credentials
// around a large "history" array that no pattern reaches, as the SDK's
// payload tests have it.
func largeBody(size int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"id_connector": 40, "login": "john.doe", "history": [`)
	for i := 0; b.Len() < size-200; i++ {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, `{"id": %d, "amount": 12345678901234567890, "label": "caf\u00e9 payment %d", "tags": ["a", "b"], "ok": true}`, i, i)
	}
	b.WriteString(`], "password": "hunter2", "otp": "123456"}`)
	return b.Bytes()
}

// bodyCase is a body with the Payload that designates its three values.
type bodyCase struct {
	name string
	body []byte
	p    *e2ee.Payload
}

func bodyCases(tb testing.TB) []bodyCase {
	enc := e2ee.NewEncryptor(e2ee.StaticKey(sdkKey(rsa2048a)))
	small, err := e2ee.NewPayload(enc, connectionFields...)
	if err != nil {
		tb.Fatal(err)
	}
	large, err := e2ee.NewPayload(enc, "/login", "/password", "/otp")
	if err != nil {
		tb.Fatal(err)
	}
	return []bodyCase{
		{"300B", []byte(connectionBody300), small},
		{"1MiB", largeBody(1 << 20), large},
	}
}

// skipPass reads body as the SDK's tokenizer would at the least: one
// jsontext SkipValue over the whole value, with the decoder options the SDK
// uses, then a check that nothing follows. dec and buf are reused.
func skipPass(dec *jsontext.Decoder, buf *bytes.Buffer, body []byte) error {
	*buf = *bytes.NewBuffer(body)
	dec.Reset(buf, jsontext.AllowDuplicateNames(true))
	if err := dec.SkipValue(); err != nil {
		return err
	}
	if _, err := dec.ReadToken(); err != io.EOF {
		return fmt.Errorf("trailing data: %v", err)
	}
	return nil
}

// TestBodyCases checks that the SDK encrypts three values of each body,
// and that the bare pass accepts it.
func TestBodyCases(t *testing.T) {
	var buf bytes.Buffer
	dec := jsontext.NewDecoder(&buf)
	for _, c := range bodyCases(t) {
		out, err := c.p.Encrypt(context.Background(), c.body)
		if err != nil {
			t.Fatal(err)
		}
		if n := bytes.Count(out, []byte(`"eyJ`)); n != 3 {
			t.Errorf("Encrypt(%s body) has %d JWEs; want 3", c.name, n)
		}
		if err := skipPass(dec, &buf, c.body); err != nil {
			t.Errorf("skipPass(%s body) = %v; want nil", c.name, err)
		}
	}
}

// BenchmarkBody measures a body rewritten by the SDK (three values
// encrypted, RSA included), the SDK's walk alone (Payload.Check, which
// reads the body as Encrypt does but encrypts nothing), a decode into any and encode, json.Valid, and a
// bare jsontext SkipValue pass, for a 300-byte and a 1 MiB body.
func BenchmarkBody(b *testing.B) {
	ctx := context.Background()
	var buf bytes.Buffer
	dec := jsontext.NewDecoder(&buf)
	for _, c := range bodyCases(b) {
		b.Run(c.name, func(b *testing.B) {
			var out []byte // reused by SDKAppend
			for _, v := range ordered([]struct {
				name string
				run  func() error
			}{
				{"SDK", func() error {
					_, err := c.p.Encrypt(ctx, c.body)
					return err
				}},
				{"SDKAppend", func() error {
					var err error
					out, err = c.p.AppendEncrypt(ctx, out[:0], c.body)
					return err
				}},
				{"SDKWalk", func() error {
					if err := c.p.Check(c.body); !errors.Is(err, e2ee.ErrCleartext) {
						return fmt.Errorf("Check = %v; want ErrCleartext", err)
					}
					return nil
				}},
				{"UnmarshalMarshal", func() error {
					var v any
					if err := json.Unmarshal(c.body, &v); err != nil {
						return err
					}
					_, err := json.Marshal(v)
					return err
				}},
				{"Valid", func() error {
					if !json.Valid(c.body) {
						return fmt.Errorf("invalid")
					}
					return nil
				}},
				{"SkipValue", func() error { return skipPass(dec, &buf, c.body) }},
			}) {
				b.Run(v.name, func(b *testing.B) {
					b.SetBytes(int64(len(c.body)))
					b.ReportAllocs()
					for b.Loop() {
						if err := v.run(); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
		})
	}
}
