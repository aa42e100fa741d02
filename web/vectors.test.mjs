// Conformance vectors under Node: node --test web/vectors.test.mjs
//
// Every case of testdata/vectors/jwe.json and jwe-4096.json is decrypted
// with WebCrypto alone, importing the files' private JWK as it is; e2ee.js's
// own JWEs of the same plaintexts decrypt with that key; and encryptFields,
// given each body of testdata/vectors/bodies.json with its patterns,
// encrypts the values that the Go Payload encrypted, and they decrypt to the
// body before encryption. See testdata/vectors/README.md.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it, before } from "node:test";

import { encryptFields, encryptString, importKey, isJWE } from "./e2ee.js";

const subtle = globalThis.crypto.subtle;
const vectorsDir = new URL("../testdata/vectors/", import.meta.url);
const readJSON = (name) => JSON.parse(readFileSync(new URL(name, vectorsDir), "utf8"));
const utf8 = new TextEncoder();
// ignoreBOM keeps a leading U+FEFF: the plaintext is the value's bytes, all of them.
const utf8Decode = (bytes) => new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);

/** b64decode decodes canonical base64url without padding, and throws on anything else. */
function b64decode(s, what) {
  if (!/^[A-Za-z0-9_-]*$/.test(s) || s.length % 4 === 1) throw new Error(`${what} is not base64url without padding`);
  const bytes = new Uint8Array(Buffer.from(s, "base64url"));
  if (Buffer.from(bytes).toString("base64url") !== s) throw new Error(`${what} is not canonical base64url`);
  return bytes;
}

/**
 * vectorKey imports the private JWK of a vector file, as it is, for
 * RSA-OAEP with SHA-256 (and so MGF1-SHA-256, which WebCrypto always pairs
 * with it).
 */
async function vectorKey(file) {
  const jwk = file.key;
  const priv = await subtle.importKey("jwk", jwk, { name: "RSA-OAEP", hash: "SHA-256" }, false, ["decrypt"]);
  return { priv, kid: jwk.kid, modulusBytes: b64decode(jwk.n, "n").length, jwk };
}

/**
 * decrypt decrypts a compact JWE with key, accepting only a protected header
 * of exactly alg RSA-OAEP-256, enc A256GCM and the key's kid, an encrypted
 * key of the modulus's size, a 96-bit IV, a 256-bit content key and a
 * 128-bit tag that verifies over the header's base64url text; it returns
 * the plaintext's bytes.
 */
async function decrypt(jwe, key) {
  const parts = jwe.split(".");
  if (parts.length !== 5) throw new Error(`a compact JWE has 5 parts, not ${parts.length}`);
  const [header, ek, iv, ct, tag] = parts.map((p, i) => b64decode(p, ["header", "encrypted key", "IV", "ciphertext", "tag"][i]));
  const h = JSON.parse(utf8Decode(header));
  const members = Object.keys(h).sort();
  if (members.join() !== "alg,enc,kid") throw new Error(`header has ${members.join(", ")}; want alg, enc and kid only`);
  if (h.alg !== "RSA-OAEP-256") throw new Error(`alg is ${h.alg}; want RSA-OAEP-256`);
  if (h.enc !== "A256GCM") throw new Error(`enc is ${h.enc}; want A256GCM`);
  if (h.kid !== key.kid) throw new Error(`kid is ${h.kid}; want ${key.kid}`);
  if (ek.length !== key.modulusBytes) throw new Error(`encrypted key is ${ek.length} bytes; want ${key.modulusBytes}`);
  if (iv.length !== 12) throw new Error(`IV is ${iv.length} bytes; want 12`);
  if (tag.length !== 16) throw new Error(`tag is ${tag.length} bytes; want 16`);
  const cek = await subtle.decrypt({ name: "RSA-OAEP" }, key.priv, ek);
  if (cek.byteLength !== 32) throw new Error(`content key is ${cek.byteLength} bytes; want 32`);
  const aes = await subtle.importKey("raw", cek, "AES-GCM", false, ["decrypt"]);
  const sealed = new Uint8Array(ct.length + tag.length);
  sealed.set(ct);
  sealed.set(tag, ct.length);
  const plain = await subtle.decrypt({ name: "AES-GCM", iv, additionalData: utf8.encode(parts[0]), tagLength: 128 }, aes, sealed);
  return new Uint8Array(plain);
}

/** assertPlaintext asserts that jwe decrypts with key to the UTF-8 bytes of want, byte for byte. */
async function assertPlaintext(jwe, key, want, what) {
  const got = await decrypt(jwe, key);
  assert.deepEqual(Buffer.from(got), Buffer.from(utf8.encode(want)), `${what}: plaintext`);
}

/** Opened stands for a JWE in a body, by its plaintext. */
class Opened {
  constructor(plaintext) {
    this.plaintext = plaintext;
  }
}

/** open returns a copy of value with each JWE string (as isJWE tells) replaced by an Opened of its plaintext; each must decrypt with key. */
async function open(value, key) {
  if (typeof value === "string") return isJWE(value) ? new Opened(utf8Decode(await decrypt(value, key))) : value;
  if (Array.isArray(value)) return Promise.all(value.map((v) => open(v, key)));
  if (value !== null && typeof value === "object") {
    const out = {};
    for (const [k, v] of Object.entries(value)) out[k] = await open(v, key);
    return out;
  }
  return value;
}

/** strip returns a copy of an opened value with each Opened replaced by its plaintext. */
function strip(value) {
  if (value instanceof Opened) return value.plaintext;
  if (Array.isArray(value)) return value.map(strip);
  if (value !== null && typeof value === "object") return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, strip(v)]));
  return value;
}

/** publicHandle imports the public half of a vector key with e2ee.js. */
const publicHandle = ({ jwk }) => importKey({ kty: jwk.kty, n: jwk.n, e: jwk.e, kid: jwk.kid, use: jwk.use, alg: jwk.alg });

const vectorFiles = ["jwe.json", "jwe-4096.json"];

describe("conformance vectors", () => {
  const files = {};
  const keys = {};
  before(async () => {
    for (const name of vectorFiles) {
      files[name] = readJSON(name);
      keys[name] = await vectorKey(files[name]);
    }
  });

  for (const name of vectorFiles) {
    it(`decrypts every case of ${name} with WebCrypto`, async () => {
      const f = files[name];
      assert.match(f.note, /public test material/i);
      assert.match(f.key.note, /public test material/i);
      assert.ok(f.cases.length >= 20, `${f.cases.length} cases; want at least 20`);
      for (const c of f.cases) await assertPlaintext(c.jwe, keys[name], c.plaintext, c.name);
    });

    it(`decrypts e2ee.js's JWEs of the plaintexts of ${name} with its key`, async () => {
      const handle = await publicHandle(keys[name]);
      assert.equal(handle.kid, keys[name].kid);
      for (const c of files[name].cases) {
        await assertPlaintext(await encryptString(handle, c.plaintext), keys[name], c.plaintext, c.name);
      }
    });
  }

  it("encrypts each body of bodies.json as the Go Payload did, to JWEs that decrypt to the body", async () => {
    const bodies = readJSON("bodies.json");
    const key = keys["jwe.json"];
    assert.match(bodies.note, /public test material/i);
    assert.equal(bodies.kid, key.kid);
    assert.ok(bodies.bodies.length >= 10);
    const handle = await publicHandle(key);
    for (const b of bodies.bodies) {
      const data = JSON.parse(b.before);
      const wantOpened = await open(JSON.parse(b.after), key);
      const beforeOpened = strip(await open(data, key)); // the already-encrypted body's JWE, opened
      assert.deepEqual(strip(wantOpened), beforeOpened, `${b.name}: after decrypts to before`);

      const got = await encryptFields(handle, data, b.patterns);
      assert.deepEqual(data, JSON.parse(b.before), `${b.name}: encryptFields left data as it was`);
      const gotOpened = await open(got, key);
      assert.deepEqual(gotOpened, wantOpened, `${b.name}: encryptFields encrypts the values that after has encrypted`);
      assert.deepEqual(strip(gotOpened), beforeOpened, `${b.name}: encryptFields gives a body that decrypts to before`);
    }
  });

  it("fails on a corrupted vector, a changed header, a quoted plaintext", async () => {
    const key = keys["jwe.json"];
    const c = files["jwe.json"].cases.find((c) => c.name === "ascii");
    await assertPlaintext(c.jwe, key, c.plaintext, c.name);
    const parts = c.jwe.split(".");
    for (let i = 1; i < 5; i++) {
      const corrupt = parts.slice();
      const mid = corrupt[i].length >> 1;
      corrupt[i] = corrupt[i].slice(0, mid) + (corrupt[i][mid] === "A" ? "B" : "A") + corrupt[i].slice(mid + 1);
      await assert.rejects(assertPlaintext(corrupt.join("."), key, c.plaintext, c.name), `part ${i} corrupted`);
    }
    const zip = Buffer.from(JSON.stringify({ alg: "RSA-OAEP-256", enc: "A256GCM", kid: key.kid, zip: "DEF" })).toString("base64url");
    await assert.rejects(decrypt([zip, ...parts.slice(1)].join("."), key), /want alg, enc and kid only/);
    const noKid = Buffer.from(JSON.stringify({ alg: "RSA-OAEP-256", enc: "A256GCM" })).toString("base64url");
    await assert.rejects(decrypt([noKid, ...parts.slice(1)].join("."), key), /want alg, enc and kid only/);
    await assert.rejects(assertPlaintext(c.jwe, key, c.plaintext + "x", c.name));
    const quoted = await encryptString(await publicHandle(key), JSON.stringify(c.plaintext));
    await assert.rejects(assertPlaintext(quoted, key, c.plaintext, "quoted"));
  });
});
