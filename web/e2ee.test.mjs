// Tests of e2ee.js under Node: node --test web/e2ee.test.mjs
//
// JWEs are decrypted here with WebCrypto and the fixture private keys of the
// Go module (internal/fixture/keys); package web's Go tests decrypt them with
// go-jose too.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import { describe, it, before, after } from "node:test";

import { E2EEError, encryptFields, encryptString, fetchKey, importKey, isJWE } from "./e2ee.js";

const subtle = globalThis.crypto.subtle;
const root = new URL("../", import.meta.url);
const read = (path) => readFileSync(new URL(path, root), "utf8");

const b64 = {
  encode: (bytes) => btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, ""),
  decode: (s) => Uint8Array.from(atob(s.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0)),
};

/** fixture returns a fixture key pair: the private key for decrypting, and its public JWK members. */
async function fixture(name) {
  const pem = read(`internal/fixture/keys/${name}.pem`);
  const der = b64.decode(
    pem
      .replace(/-----[^-]+-----/g, "")
      .replace(/\s+/g, "")
      .replace(/\+/g, "-")
      .replace(/\//g, "_")
      .replace(/=+$/, ""),
  );
  const alg = { name: "RSA-OAEP", hash: "SHA-256" };
  const priv = await subtle.importKey("pkcs8", der, alg, true, ["decrypt"]);
  const { n, e } = await subtle.exportKey("jwk", priv);
  const thumb = b64.encode(new Uint8Array(await subtle.digest("SHA-256", new TextEncoder().encode(`{"e":"${e}","kty":"RSA","n":"${n}"}`))));
  return { priv, jwk: { kty: "RSA", n, e }, thumbprint: thumb };
}

/**
 * decrypt decrypts a compact JWE with priv, accepting only a protected
 * header of exactly alg RSA-OAEP-256, enc A256GCM and kid, a 96-bit IV and a
 * 128-bit tag, and returns its header text and plaintext.
 */
async function decrypt(jwe, priv, kid) {
  const parts = jwe.split(".");
  assert.equal(parts.length, 5, "a compact JWE has five parts");
  const headerText = new TextDecoder().decode(b64.decode(parts[0]));
  const header = JSON.parse(headerText);
  assert.deepEqual(Object.keys(header).sort(), ["alg", "enc", "kid"]);
  assert.equal(header.alg, "RSA-OAEP-256");
  assert.equal(header.enc, "A256GCM");
  assert.equal(header.kid, kid);
  const [ek, iv, ct, tag] = parts.slice(1).map(b64.decode);
  assert.equal(iv.length, 12, "96-bit IV");
  assert.equal(tag.length, 16, "128-bit tag");
  const cek = await subtle.decrypt({ name: "RSA-OAEP" }, priv, ek);
  assert.equal(cek.byteLength, 32, "256-bit content key");
  const aes = await subtle.importKey("raw", cek, "AES-GCM", false, ["decrypt"]);
  const sealed = new Uint8Array(ct.length + tag.length);
  sealed.set(ct);
  sealed.set(tag, ct.length);
  const plain = await subtle.decrypt(
    { name: "AES-GCM", iv, additionalData: new TextEncoder().encode(parts[0]), tagLength: 128 },
    aes,
    sealed,
  );
  return { headerText, plaintext: new TextDecoder("utf-8", { fatal: true }).decode(plain) };
}

/** rejects asserts that promise rejects with an E2EEError of code whose message matches. */
async function rejects(promise, code, message) {
  await assert.rejects(promise, (err) => {
    assert.ok(err instanceof E2EEError, `${err} is an E2EEError`);
    assert.equal(err.code, code, err.message);
    assert.match(err.message, /^e2ee: /);
    if (message) assert.ok(err.message.includes(message), `${JSON.stringify(err.message)} includes ${JSON.stringify(message)}`);
    return true;
  });
}

const canary = "c4n4ry-S3cr3t";

/** oddModulus returns 2^(bits-1) + 1, base64url: an odd modulus of bits bits (not a product of primes). */
function oddModulus(bits) {
  const n = new Uint8Array(Math.ceil(bits / 8));
  n[0] = 1 << ((bits - 1) % 8);
  n[n.length - 1] |= 1;
  return b64.encode(n);
}

let A, B, small, big, keyA;
before(async () => {
  [A, B, small, big] = await Promise.all(["rsa2048a", "rsa2048b", "rsa1024", "rsa4096"].map(fixture));
  keyA = await importKey({ ...A.jwk, kid: A.thumbprint });
});

describe("encryptString", () => {
  it("makes a JWE that decrypts to the value, with the Go header", async () => {
    for (const value of ["hunter2", "", "päss 🔐 \"q\" \\ / \n\t\u0000", "ab€".repeat(3000)]) {
      const jwe = await encryptString(keyA, value);
      assert.ok(isJWE(jwe));
      const { headerText, plaintext } = await decrypt(jwe, A.priv, A.thumbprint);
      assert.equal(plaintext, value);
      assert.equal(headerText, `{"alg":"RSA-OAEP-256","enc":"A256GCM","kid":"${A.thumbprint}"}`);
      assert.equal(b64.decode(jwe.split(".")[1]).length, 256, "encrypted key as long as the modulus");
    }
  });

  it("uses a fresh content key and IV each time", async () => {
    const [x, y] = await Promise.all([encryptString(keyA, "same"), encryptString(keyA, "same")]);
    const [px, py] = [x.split("."), y.split(".")];
    assert.notEqual(px[1], py[1]);
    assert.notEqual(px[2], py[2]);
    assert.notEqual(px[3], py[3]);
  });

  it("writes the kid as go-jose does", async () => {
    const kid = 'k <b>&"q" \\ / \u2028\u2029 \u0001\u001f\u007f é 🔐 \t\n\r\b\f';
    const key = await importKey({ ...A.jwk, kid });
    const { headerText } = await decrypt(await encryptString(key, "x"), A.priv, kid);
    assert.equal(
      headerText,
      '{"alg":"RSA-OAEP-256","enc":"A256GCM","kid":"k \\u003cb\\u003e\\u0026\\"q\\" \\\\ / \\u2028\\u2029 \\u0001\\u001f\u007f é 🔐 \\t\\n\\r\\u0008\\u000c"}',
    );
  });

  it("uses RSA-OAEP-256 whatever the key's alg says", async () => {
    const key = await importKey({ ...big.jwk, kid: "provider", alg: "RSA-OAEP", use: "enc" });
    const { plaintext } = await decrypt(await encryptString(key, "x"), big.priv, "provider");
    assert.equal(plaintext, "x");
  });

  it("refuses what is not a well-formed string", async () => {
    for (const value of [42, undefined, null, new String("x"), ["x"]]) {
      await rejects(encryptString(keyA, value), "invalid-argument", "not a string");
    }
    await rejects(encryptString(keyA, canary + "\ud800"), "not-json", "lone surrogate");
    await rejects(encryptString(keyA, "\udc00" + canary), "not-json", "lone surrogate");
  });

  it("refuses a key that importKey did not return", async () => {
    for (const key of [{ ...A.jwk, kid: "k" }, {}, null, undefined, Object.freeze({ ...keyA })]) {
      await rejects(encryptString(key, canary), "invalid-argument", "importKey");
    }
  });

  it("never puts the value in an error", async () => {
    await assert.rejects(encryptString(keyA, canary + "\ud800"), (err) => !err.message.includes(canary));
  });
});

describe("importKey", () => {
  const cases = [
    ["kty EC", () => ({ ...A.jwk, kty: "EC", kid: "k" }), 'kty is "EC", want "RSA"'],
    ["kty missing", () => ({ n: A.jwk.n, e: A.jwk.e, kid: "k" }), "kty is missing"],
    ["use sig", () => ({ ...A.jwk, kid: "k", use: "sig" }), 'use is "sig", want "enc"'],
    ["key_ops verify", () => ({ ...A.jwk, kid: "k", key_ops: ["verify"] }), 'key_ops allows neither "encrypt" nor "wrapKey"'],
    ["key_ops a string", () => ({ ...A.jwk, kid: "k", key_ops: "encrypt" }), "key_ops is not an array of strings"],
    ["alg RSA1_5", () => ({ ...A.jwk, kid: "k", alg: "RSA1_5" }), 'alg is "RSA1_5"'],
    ["alg empty", () => ({ ...A.jwk, kid: "k", alg: "" }), 'alg is ""'],
    ["alg null", () => ({ ...A.jwk, kid: "k", alg: null }), 'alg is ""'],
    ["alg RS256", () => ({ ...A.jwk, kid: "k", alg: "RS256" }), 'alg is "RS256"'],
    ["no kid", () => ({ ...A.jwk }), "kid is missing or empty"],
    ["empty kid", () => ({ ...A.jwk, kid: "" }), "kid is missing or empty"],
    ["kid a number", () => ({ ...A.jwk, kid: 7 }), "kid is not a string"],
    ["kid with a lone surrogate", () => ({ ...A.jwk, kid: "k\ud800" }), "kid is not well-formed"],
    ["private members", () => ({ ...A.jwk, kid: "k", d: "AQAB", qi: "AQAB" }), "private members (d, qi)"],
    ["1024-bit modulus", () => ({ ...small.jwk, kid: "k" }), "modulus has 1024 bits, need at least 2048"],
    ["even modulus", () => ({ ...A.jwk, kid: "k", n: A.jwk.n.slice(0, -1) + "A" }), "modulus is even"],
    ["even exponent", () => ({ ...A.jwk, kid: "k", e: "AQAA" }), "public exponent 65536 is even"],
    ["exponent 1", () => ({ ...A.jwk, kid: "k", e: "AQ" }), "public exponent 1 is less than 3"],
    ["exponent of 33 bits", () => ({ ...A.jwk, kid: "k", e: "AQAAAAE" }), "public exponent of 33 bits is larger than 65537"],
    ["exponent 65539", () => ({ ...A.jwk, kid: "k", e: "AQAD" }), "public exponent 65539 is larger than 65537"],
    ["exponent 2^31-1", () => ({ ...A.jwk, kid: "k", e: "f____w" }), "public exponent 2147483647 is larger than 65537"],
    ["modulus of 8193 bits", () => ({ ...A.jwk, kid: "k", n: oddModulus(8193) }), "modulus has 8193 bits, at most 8192 are accepted"],
    ["16384 bits, exponent 2^31-1", () => ({ kty: "RSA", kid: "k", n: oddModulus(16384), e: "f____w" }), "public exponent 2147483647 is larger than 65537"],
    ["kty with characters that do not print", () => ({ ...A.jwk, kid: "k", kty: "R\x1b[2J\x7f\u00a0\u202e\x07\n" }), 'kty is "R\\x1b[2J\\x7f\\u00a0\\u202e\\a\\n", want "RSA"'],
    ["long kty, cut inside a character", () => ({ ...A.jwk, kid: "k", kty: "a" + "é".repeat(40) }), `kty is "a${"é".repeat(31)}\\xc3...", want "RSA"`],
    [
      "set member whose kid does not print",
      () => ({ keys: [{ ...A.jwk, kid: "\x1b]0;owned\x07\u202e", use: "sig" }] }),
      'key 0 (kid "\\x1b]0;owned\\a\\u202e"): use is "sig", want "enc"',
    ],
    ["n not base64url", () => ({ ...A.jwk, kid: "k", n: "a+b/" }), "n is not base64url"],
    ["n empty", () => ({ ...A.jwk, kid: "k", n: "" }), "n is empty"],
    ["e missing", () => ({ kty: "RSA", n: A.jwk.n, kid: "k" }), "e is missing"],
    ["empty set", () => ({ keys: [] }), "JWK Set has no keys"],
    [
      "set without an eligible key",
      () => ({ keys: [{ ...A.jwk, kid: "sig-2026", use: "sig" }, { ...small.jwk, kid: "old-1024" }, 7] }),
      'no eligible key in JWK Set: key 0 (kid "sig-2026"): use is "sig", want "enc"; key 1 (kid "old-1024"): modulus has 1024 bits, need at least 2048; key 2: not a JSON object',
    ],
    ["set whose keys is not an array", () => ({ keys: {} }), "keys is not an array"],
    ["an array", () => [], "not a JSON object"],
    ["null", () => null, "not a JSON object"],
    ["a string", () => JSON.stringify(A.jwk), "not a JSON object"],
  ];
  for (const [name, jwk, message] of cases) {
    it(`refuses: ${name}`, async () => {
      await rejects(importKey(jwk()), "unsuitable-key", message);
    });
  }

  it("accepts the costliest eligible key: 8192 bits, exponent 65537", async () => {
    const key = await importKey({ kty: "RSA", kid: "k", n: oddModulus(8192), e: "AQAB" });
    assert.equal(key.modulusBits, 8192);
    const exp3 = await importKey({ ...A.jwk, kid: "k", e: "Aw" });
    assert.equal(exp3.modulusBits, 2048);
  });

  it("never puts a character that does not print in an error", async () => {
    for (const evil of ["\x1b[2J", "\u202e", "\x00", "\x7f", "\u2028", "\u00a0", "\r"]) {
      for (const jwk of [
        { ...A.jwk, kid: "k", kty: evil },
        { ...A.jwk, kid: "k", use: evil },
        { ...A.jwk, kid: "k", alg: evil },
        { keys: [{ ...A.jwk, kid: evil, use: "sig" }] },
      ]) {
        await assert.rejects(importKey(jwk), (err) => {
          assert.ok(!/[^\p{L}\p{M}\p{N}\p{P}\p{S} ]/u.test(err.message), `${JSON.stringify(err.message)} has a character that does not print`);
          return true;
        });
      }
    }
  });

  it("never puts key material in an error", async () => {
    await assert.rejects(importKey({ ...A.jwk, kid: "k", d: A.jwk.n }), (err) => !err.message.includes(A.jwk.n.slice(0, 16)));
  });

  it("accepts the provider's key (alg RSA-OAEP, use enc, 4096 bits)", async () => {
    const provider = JSON.parse(read("testdata/provider-key.json"));
    const key = await importKey(provider);
    assert.equal(key.kid, provider.kid);
    assert.equal(key.thumbprint, provider.kid, "the provider's kid is its thumbprint");
    assert.equal(key.modulusBits, 4096);
    assert.ok(Object.isFrozen(key));
  });

  it("accepts key_ops wrapKey, no alg, a padded and zero-led n", async () => {
    const key = await importKey({ kty: "RSA", kid: "k", key_ops: ["wrapKey"], e: A.jwk.e, n: "AAAA" + A.jwk.n + "==" });
    assert.equal(key.thumbprint, A.thumbprint);
    assert.equal(key.modulusBits, 2048);
  });

  it("chooses in a set as ParseKey does", async () => {
    const set = (...keys) => ({ keys });
    let key = await importKey(set({ ...B.jwk, kid: "b", alg: "RSA-OAEP" }, { ...A.jwk, kid: "a", alg: "RSA-OAEP-256" }));
    assert.equal(key.kid, "a", "the RSA-OAEP-256 key first");
    key = await importKey(set({ ...A.jwk, kid: "sig", use: "sig" }, { ...B.jwk, kid: "b" }, { ...A.jwk, kid: "a" }));
    assert.equal(key.kid, "b", "else the first eligible key");
  });
});

describe("thumbprint pins", () => {
  it("accept a key whose thumbprint is pinned", async () => {
    const key = await importKey({ ...A.jwk, kid: "a" }, { thumbprints: [B.thumbprint, A.thumbprint] });
    assert.equal(key.thumbprint, A.thumbprint);
  });

  it("refuse a key whose thumbprint is not pinned", async () => {
    await rejects(importKey({ ...A.jwk, kid: "a" }, { thumbprints: [B.thumbprint] }), "unsuitable-key", `thumbprint ${A.thumbprint} is not pinned`);
  });

  it("pick the pinned key of a set", async () => {
    const set = { keys: [{ ...A.jwk, kid: "a", alg: "RSA-OAEP-256" }, { ...B.jwk, kid: "b" }] };
    assert.equal((await importKey(set, { thumbprints: [B.thumbprint] })).kid, "b");
    await rejects(importKey(set, { thumbprints: [big.thumbprint] }), "unsuitable-key", 'key 1 (kid "b"): thumbprint');
  });

  const malformed = [
    ["42 characters", () => [A.thumbprint.slice(1)]],
    ["44 characters", () => [A.thumbprint + "A"]],
    ["padded", () => [A.thumbprint.slice(0, 42) + "="]],
    ["standard base64", () => ["+" + A.thumbprint.slice(1)]],
    ["non-canonical last character", () => [A.thumbprint.slice(0, 42) + "B"]],
    ["not a string", () => [42]],
    ["empty list", () => []],
    ["a string, not a list", () => A.thumbprint],
    ["null", () => null],
  ];
  for (const [name, pins] of malformed) {
    it(`are an error when malformed: ${name}`, async () => {
      await rejects(importKey({ ...A.jwk, kid: "a" }, { thumbprints: pins() }), "invalid-argument", "thumbprint");
    });
  }
});

describe("fetchKey", () => {
  let server;
  let base;
  let requests = 0;
  const routes = {
    "/key": (res) => res.end(JSON.stringify({ ...A.jwk, kid: "a", use: "enc", alg: "RSA-OAEP-256" })),
    "/set": (res) => res.end(JSON.stringify({ keys: [{ ...A.jwk, kid: "a" }] })),
    "/down": (res) => {
      res.statusCode = 503;
      res.end("key unavailable");
    },
    "/dup": (res) => res.end(`{"kty":"RSA","kid":"a","kid":"b","n":"${A.jwk.n}","e":"AQAB"}`),
    "/huge": (res) => res.end(JSON.stringify({ ...A.jwk, kid: "a", pad: "x".repeat(300 << 10) })),
    "/redirect": (res) => {
      res.statusCode = 302;
      res.setHeader("Location", "/key");
      res.end();
    },
    "/html": (res) => res.end("<html>"),
  };
  before(async () => {
    server = createServer((req, res) => {
      requests++;
      (routes[req.url] ?? ((r) => ((r.statusCode = 404), r.end())))(res);
    });
    await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
    base = `http://127.0.0.1:${server.address().port}`;
  });
  after(() => server.close());

  it("imports the key the relay serves", async () => {
    const key = await fetchKey(base + "/key", { thumbprints: [A.thumbprint] });
    assert.equal(key.kid, "a");
    const { plaintext } = await decrypt(await encryptString(key, "hunter2"), A.priv, "a");
    assert.equal(plaintext, "hunter2");
    assert.equal((await fetchKey(new URL("/set", base))).kid, "a");
  });

  it("refuses a key whose thumbprint is not pinned", async () => {
    await rejects(fetchKey(base + "/key", { thumbprints: [B.thumbprint] }), "unsuitable-key", "not pinned");
  });

  for (const [path, code, message] of [
    ["/down", "key-unavailable", "answered 503"],
    ["/missing", "key-unavailable", "answered 404"],
    ["/dup", "unsuitable-key", "duplicate member names"],
    ["/huge", "key-unavailable", "exceeds 262144 bytes"],
    ["/redirect", "key-unavailable", "fetching the key"],
    ["/html", "unsuitable-key", "not JSON"],
  ]) {
    it(`refuses ${path}`, async () => {
      await rejects(fetchKey(base + path), code, message);
    });
  }

  it("refuses URLs that are not https or loopback http, and bad pins, before any request", async () => {
    const before = requests;
    await rejects(fetchKey("http://example.com/key"), "invalid-argument", "https");
    await rejects(fetchKey("ftp://127.0.0.1/key"), "invalid-argument", "https");
    await rejects(fetchKey("/key"), "invalid-argument", "not a URL"); // no page to resolve it against
    await rejects(fetchKey(base + "/key", { thumbprints: ["short"] }), "invalid-argument", "thumbprints[0]");
    assert.equal(requests, before);
  });
});

// The golden cases of the Go Payload tests (payload_test.go), on the same
// files: testdata/payload/{input}.json encrypted with the patterns, then
// decrypted, must give {name}.golden, where jwe("x") marks an encrypted "x".
// The provider's patterns come from testdata/powens-fields.json, which
// package powens's tests keep equal to powens.Fields.
const powensFields = JSON.parse(read("testdata/powens-fields.json"));
const connectionCreate = powensFields["connection-create"];
const connectionUpdate = powensFields["connection-update"];
const transferUpdate = powensFields["transfer-update"];
const goldens = [
  ["connection-create", "connection-create", connectionCreate],
  ["connection-update-otp", "connection-update-otp", connectionUpdate],
  ["connection-update", "connection-update", connectionUpdate],
  ["transfer-update", "transfer-update", transferUpdate],
  ["payment-validation", "payment-validation", ["/fields/*"]],
  ["preserved", "preserved", ["/password"]],
  ["escapes", "escapes", ["/password", "/login"]],
  ["duplicates", "duplicates", ["/password"]],
  ["null-and-jwe", "null-and-jwe", ["/*"]],
  ["array-wildcard", "array-wildcard", ["/fields/*/value"]],
  ["exclusions", "exclusions", ["/*", "/*/*", "!/payer", "!/fields", "!/payer/iban"]],
  ["escaped-names", "exclusions", ["/a~1b", "/m~0n", "/password"]],
  ["top-array", "top-array", ["/*/secret", "/2"]],
  ["empty-string", "empty-string", ["/password"]],
  ["nothing-designated", "nothing-designated", connectionCreate],
  ["absent", "connection-create", ["/otp", "/fields/*/value"]],
];

const JWE_MARK = "\u0000jwe";

/** parseGolden parses a golden file, each jwe("x") becoming {"\u0000jwe": "x"}. */
function parseGolden(text) {
  return JSON.parse(text.replace(/jwe\(("(?:[^"\\]|\\.)*")\)/g, (_, s) => `{"\\u0000jwe": ${s}}`));
}

/** open returns a copy of v whose JWE strings are {"\u0000jwe": plaintext}. */
async function open(v, priv, kid) {
  if (typeof v === "string" && isJWE(v)) return { [JWE_MARK]: (await decrypt(v, priv, kid)).plaintext };
  if (Array.isArray(v)) return Promise.all(v.map((x) => open(x, priv, kid)));
  if (v !== null && typeof v === "object") {
    const out = {};
    for (const [k, x] of Object.entries(v)) Object.defineProperty(out, k, { value: await open(x, priv, kid), enumerable: true });
    return out;
  }
  return v;
}

describe("encryptFields on the Go Payload's golden bodies", () => {
  for (const [name, input, patterns] of goldens) {
    it(name, async () => {
      const data = JSON.parse(read(`testdata/payload/${input}.json`));
      const orig = structuredClone(data);
      const out = await encryptFields(keyA, data, patterns);
      assert.deepEqual(data, orig, "encryptFields modified its input");
      assert.deepEqual(await open(out, A.priv, A.thumbprint), parseGolden(read(`testdata/payload/${name}.golden`)));
      assert.deepEqual(await encryptFields(keyA, out, patterns), out, "encrypting twice equals encrypting once");
    });
  }
});

describe("encryptFields", () => {
  it("returns a copy that shares nothing with its input", async () => {
    const data = { login: "l", nested: { list: [1, { x: "y" }] }, id: 4 };
    const out = await encryptFields(keyA, data, ["/login"]);
    assert.notEqual(out.nested, data.nested);
    assert.notEqual(out.nested.list, data.nested.list);
    assert.notEqual(out.nested.list[1], data.nested.list[1]);
    assert.equal(data.login, "l");
  });

  it("keeps a member named __proto__ a member", async () => {
    const data = JSON.parse(`{"__proto__": "${canary}", "a": "x"}`);
    const out = await encryptFields(keyA, data, ["/*"]);
    assert.equal(Object.getPrototypeOf(out), Object.prototype);
    assert.deepEqual(Object.keys(out), ["__proto__", "a"]);
    assert.equal((await decrypt(Object.getOwnPropertyDescriptor(out, "__proto__").value, A.priv, A.thumbprint)).plaintext, canary);
    assert.ok(!JSON.stringify(out).includes(canary));
  });

  it("resolves ~01 to ~1, not to /", async () => {
    const out = await encryptFields(keyA, { "~1": "tilde-one", "/": "slash", "~": "tilde" }, ["/~01"]);
    assert.ok(isJWE(out["~1"]));
    assert.equal(out["/"], "slash");
    assert.equal(out["~"], "tilde");
  });

  it("takes an undefined member as absent", async () => {
    const out = await encryptFields(keyA, { login: "l", otp: undefined }, ["/login", "/otp"]);
    assert.deepEqual(Object.keys(out), ["login"]);
  });

  const c = canary;
  const refusals = [
    ["a number", { pin: 1234, x: c }, ["/pin"], "not-string", "e2ee: designated value is not a string: /pin is a number"],
    ["a boolean", { a: c, ok: true }, ["/*"], "not-string", "/* is a boolean"],
    ["an object", { a: c, o: { p: c } }, ["/*"], "not-string", "/* is an object"],
    ["an array", { fields: { list: [c] } }, ["/fields/*"], "not-string", "/fields/* is an array"],
    ["an array element", { list: ["a", 7] }, ["/list/*"], "not-string", "/list/1 is a number"],
    ["a name named by a pattern", { "a/b~c": 1 }, ["/a~1b~0c"], "not-string", "/a~1b~0c is a number"],
    ["a name unlike an identifier", { "a/b~c": 1 }, ["/*"], "not-string", "/* is a number"],
    ["a templated name", { login: "a", [`${c} is`]: 1 }, ["/*"], "not-string", "/* is a number"],
    ["an identifier-like name", { "pin_code-2.x": 1 }, ["/*"], "not-string", "/* is a number"],
    ["a name named by a \"!\" pattern", { pin: 1 }, ["/*", "!/pin/x"], "not-string", "/pin is a number"],
    ["an unprintable name named by a pattern", { "pin\u0007\n": 1 }, ["/pin\u0007\n"], "not-string", "e2ee: designated value is not a string: /* is a number"],
    ["a String object", { p: new String(c) }, ["/p"], "not-json", "/p is an object that is not a plain object"],
    ["a Date", { p: new Date() }, ["/p"], "not-json", "/p is an object that is not a plain object"],
    ["a function", { p: () => c }, ["/p"], "not-json", "/p is a function"],
    ["a bigint", { p: 12n }, ["/p"], "not-json", "/p is a bigint"],
    ["NaN elsewhere", { p: c, n: NaN }, ["/p"], "not-json", "/* is a number that JSON cannot hold"],
    ["a Map elsewhere", { p: c, m: new Map() }, ["/p"], "not-json", "/* is an object that is not a plain object"],
    ["undefined in an array", { p: c, list: [undefined] }, ["/p"], "not-json", "/*/0 is undefined"],
    ["a hole in an array", { p: c, list: [, 1] }, ["/p"], "not-json", "/*/0 is undefined"], // eslint-disable-line no-sparse-arrays
    ["a toJSON method", { p: c, toJSON: () => ({ p: c }) }, ["/p"], "not-json", "/* is a function"],
    ["NaN where a pattern descends", { fields: NaN }, ["/fields/*"], "not-json", "/fields is a number that JSON cannot hold"],
    ["a String object as data", new String(c), ["/p"], "not-json", "the root is an object that is not a plain object"],
    ["a lone surrogate", { p: c + "\ud800" }, ["/p"], "not-json", "/p is a string that is not well-formed Unicode"],
    ["undefined data", undefined, ["/p"], "not-json", "the root is undefined"],
  ];
  for (const [name, data, patterns, code, message] of refusals) {
    it(`refuses ${name}, naming its pointer only`, async () => {
      await rejects(encryptFields(keyA, data, patterns), code, message);
      await assert.rejects(encryptFields(keyA, data, patterns), (err) => !err.message.includes(c.slice(0, 8)));
    });
  }

  // A page that stringifies twice, encryptFields(key, JSON.stringify(body),
  // ...) then JSON.stringify(result), would post the credentials as one
  // JSON string, in cleartext.
  it("refuses stringified data, suggesting why", async () => {
    const stringified = JSON.stringify({ id_connector: 40, login: "john", password: c });
    await assert.rejects(encryptFields(keyA, stringified, connectionCreate), (err) => {
      assert.ok(err instanceof E2EEError, `${err} is an E2EEError`);
      assert.equal(err.code, "shape", err.message);
      assert.equal(err.message, "e2ee: data is a string, not an object or an array: was it stringified (JSON.stringify) before encryptFields?");
      assert.ok(!err.message.includes(c.slice(0, 8)), err.message);
      return true;
    });
  });

  const roots = [
    ["a number", 42, "e2ee: data is a number, not an object or an array"],
    ["a boolean", true, "e2ee: data is a boolean, not an object or an array"],
    ["false", false, "e2ee: data is a boolean, not an object or an array"],
    ["null", null, "e2ee: data is null, not an object or an array"],
    ["an empty string", "", "e2ee: data is a string, not an object or an array: was it stringified (JSON.stringify) before encryptFields?"],
  ];
  for (const [name, data, message] of roots) {
    it(`refuses data that is ${name}`, async () => {
      await assert.rejects(encryptFields(keyA, data, ["/*"]), (err) => {
        assert.ok(err instanceof E2EEError, `${err} is an E2EEError`);
        assert.equal(err.code, "shape", err.message);
        assert.equal(err.message, message);
        return true;
      });
    });
  }

  it("encrypts in data that is an array", async () => {
    const out = await encryptFields(keyA, [{ password: c }, { id: 3 }, null, "x"], ["/0/password", "/2/*"]);
    assert.equal(out.length, 4);
    assert.equal((await decrypt(out[0].password, A.priv, A.thumbprint)).plaintext, c);
    assert.deepEqual(out.slice(1), [{ id: 3 }, null, "x"]);
  });

  // Payment fields that were stringified on their own: "fields":
  // "{\"website\":\"...\"}" would leave in cleartext.
  const stringifiedFields = JSON.stringify({ website: c });
  const shapes = [
    ["a string", { validated: true, fields: stringifiedFields }, ["/fields/*"], "e2ee: /fields is a string, not an object or an array: was it stringified twice?"],
    ["a number", { fields: 7 }, ["/fields/*"], "e2ee: /fields is a number, not an object or an array"],
    ["a boolean", { fields: true }, ["/fields/*"], "e2ee: /fields is a boolean, not an object or an array"],
    ["a string, deeper", { fields: [{ value: c }, stringifiedFields] }, ["/fields/*/value"], "e2ee: /fields/1 is a string, not an object or an array: was it stringified twice?"],
    ["a string, named by no pattern", { [c]: stringifiedFields }, ["/*/website"], "e2ee: /* is a string, not an object or an array: was it stringified twice?"],
    ["a string that a pattern excludes", { payer: stringifiedFields }, ["/*/*", "!/payer"], "e2ee: /payer is a string, not an object or an array: was it stringified twice?"],
  ];
  for (const [name, data, patterns, message] of shapes) {
    it(`refuses ${name} where a pattern reaches into it`, async () => {
      await assert.rejects(encryptFields(keyA, data, patterns), (err) => {
        assert.ok(err instanceof E2EEError, `${err} is an E2EEError`);
        assert.equal(err.code, "shape", err.message);
        assert.equal(err.message, message);
        assert.ok(!err.message.includes(c.slice(0, 8)), err.message);
        return true;
      });
    });
  }

  it("takes fields that are null or absent as nothing to encrypt", async () => {
    for (const data of [{ validated: true, fields: null }, { validated: true }, { validated: true, fields: undefined }]) {
      const out = await encryptFields(keyA, data, ["/fields/*"]);
      assert.deepEqual(out, data.fields === null ? data : { validated: true });
    }
  });

  it("leaves alone a scalar that only a \"!\" pattern reaches into", async () => {
    const out = await encryptFields(keyA, { fields: "x", password: c }, ["/password", "!/fields/*"]);
    assert.equal(out.fields, "x");
    assert.ok(isJWE(out.password));
  });

  it("shows a name that looks like an identifier as *, unless a pattern names it", async () => {
    const name = "hunter2Canary77";
    await assert.rejects(encryptFields(keyA, { [name]: 5 }, ["/*"]), (err) => {
      assert.equal(err.code, "not-string", err.message);
      assert.equal(err.message, "e2ee: designated value is not a string: /* is a number");
      assert.ok(!err.message.includes(name), err.message);
      return true;
    });
    await rejects(encryptFields(keyA, { [name]: 5 }, ["/*", "!/hunter2Canary77/x"]), "not-string", `/${name} is a number`);
    await rejects(encryptFields(keyA, { a: { [name]: 5 } }, ["/*/*", "!/hunter2Canary77/x"]), "not-string", "/* is a number");
  });

  it("refuses a cycle", async () => {
    const data = { p: c, o: {} };
    data.o.self = data.o;
    await rejects(encryptFields(keyA, data, ["/p"]), "not-json", "cyclic");
  });

  it("refuses more than 256 designated values before encrypting any", async () => {
    const data = (n) => Object.fromEntries([["id", 1], ...Array.from({ length: n }, (_, i) => [`f${i}`, i % 2 ? null : "v"])]);
    await rejects(encryptFields(keyA, data(257), ["/*", "!/id"]), "too-many-values", "more than 256");
    const out = await encryptFields(keyA, data(256), ["/*", "!/id"]);
    assert.equal(Object.values(out).filter(isJWE).length, 128);
  });

  const badPatterns = [
    ["no patterns", [], "no field pattern designates anything"],
    ["only exclusions", ["!/id", "!/source"], "no field pattern designates anything"],
    ["no leading slash", ["password"], '"password": want a JSON Pointer starting with /'],
    ["empty", [""], '"": want a JSON Pointer'],
    ["! alone", ["/a", "!"], '"!": want a JSON Pointer'],
    ["! without slash", ["/a", "!a"], '"!a": want a JSON Pointer'],
    ["bad ~ escape", ["/a~2"], "~ must be followed by 0 or 1"],
    ["trailing ~", ["/a/b~"], "~ must be followed by 0 or 1"],
    ["not a string", ["/a", 7], "field pattern is not a string"],
    ["not an array", "/password", "patterns must be an array"],
  ];
  for (const [name, patterns, message] of badPatterns) {
    it(`refuses a bad pattern: ${name}`, async () => {
      await rejects(encryptFields(keyA, { password: c }, patterns), "invalid-argument", message);
    });
  }

  it("refuses a key that importKey did not return", async () => {
    await rejects(encryptFields({ ...A.jwk, kid: "k" }, { p: c }, ["/p"]), "invalid-argument", "importKey");
  });
});

describe("isJWE", () => {
  const stored = JSON.parse(read("testdata/payload/null-and-jwe.json")).password;
  const [h, ek, iv, ct, tag] = stored.split(".");
  const header = (text) => b64.encode(new TextEncoder().encode(text));
  // nonCanonical sets an unused bit of the last character of a 16-byte part (22 characters, 4 unused bits).
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  const nonCanonical = (p) => p.slice(0, -1) + alphabet[(alphabet.indexOf(p.at(-1)) & 0x30) | 1];
  const cases = [
    ["a JWE of the Go Encryptor", stored, true],
    ["other header members", [header('{"alg":"RSA-OAEP-256","enc":"A256GCM","kid":"k","cty":"x"}'), ek, iv, ct, tag].join("."), true],
    ["a JWS", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl", false],
    ["RSA-OAEP", [header('{"alg":"RSA-OAEP","enc":"A256GCM","kid":"k"}'), ek, iv, ct, tag].join("."), false],
    ["A256CBC-HS512", [header('{"alg":"RSA-OAEP-256","enc":"A256CBC-HS512","kid":"k"}'), ek, iv, ct, tag].join("."), false],
    ["no kid", [header('{"alg":"RSA-OAEP-256","enc":"A256GCM"}'), ek, iv, ct, tag].join("."), false],
    ["kid a number", [header('{"alg":"RSA-OAEP-256","enc":"A256GCM","kid":1}'), ek, iv, ct, tag].join("."), false],
    ["zip", [header('{"alg":"RSA-OAEP-256","enc":"A256GCM","kid":"k","zip":"DEF"}'), ek, iv, ct, tag].join("."), false],
    ["crit", [header('{"alg":"RSA-OAEP-256","enc":"A256GCM","kid":"k","crit":[]}'), ek, iv, ct, tag].join("."), false],
    ["duplicate member", [header('{"alg":"RSA-OAEP-256","enc":"A256GCM","kid":"k","kid":"j"}'), ek, iv, ct, tag].join("."), false],
    ["ALG in capitals", [header('{"ALG":"RSA-OAEP-256","enc":"A256GCM","kid":"k"}'), ek, iv, ct, tag].join("."), false],
    ["16-byte IV", [h, ek, b64.encode(new Uint8Array(16)), ct, tag].join("."), false],
    ["short encrypted key", [h, ek.slice(0, 40), iv, ct, tag].join("."), false],
    ["short tag", [h, ek, iv, ct, tag.slice(0, 10)].join("."), false],
    ["non-canonical base64url", [h, ek, iv, ct, nonCanonical(tag)].join("."), false],
    ["padding", stored + "=", false],
    ["six parts", stored + ".x", false],
    ["a newline", stored.replace(".", ".\n"), false],
    ["not a string", 42, false],
  ];
  for (const [name, s, want] of cases) {
    it(`${name}: ${want}`, () => assert.equal(isJWE(s), want));
  }
});
