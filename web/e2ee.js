// e2ee.js: end-to-end encryption of credentials in the browser, for APIs that
// take each sensitive string of a JSON request body as a compact JWE
// (RSA-OAEP-256 key management, A256GCM content encryption, the key's kid in
// the protected header).
//
// It is the browser half of the Go module github.com/credseal/e2ee: it makes
// exactly the JWEs that the Go Encryptor makes, and designates fields with
// the same patterns as the Go Payload. It has no dependencies and uses
// WebCrypto only (globalThis.crypto.subtle), so it runs unchanged in current
// browsers (in a secure context: https, or http on localhost) and in Node 20
// or later.
//
//	import { fetchKey, encryptFields } from "/static/e2ee.js";
//	const key = await fetchKey("/e2ee/publickey");
//	const body = await encryptFields(key, { id_connector: 40, login, password }, ["/*", "!/id_connector"]);
//	await fetch("/2.0/users/me/connections", { method: "POST", body: JSON.stringify(body),
//	  headers: { "Content-Type": "application/json" } });
//
// Every error it throws is an E2EEError whose message starts with "e2ee:" and
// whose code says what went wrong. No message ever contains a value to be
// encrypted.

const subtle = globalThis.crypto?.subtle;

/**
 * E2EEError is the error that every function of this module throws. Its
 * message starts with "e2ee:" and never contains a value to be encrypted.
 * Its code is one of:
 *  - "unsuitable-key": the key is not eligible, or no key of a set is, or it
 *    is not among the pinned thumbprints;
 *  - "key-unavailable": fetchKey could not get the key document;
 *  - "not-string": a designated value is a number, boolean, object or array;
 *  - "shape": data is not an object or an array, or a value that a pattern
 *    reaches into is a string, number or boolean (a stringified object);
 *  - "too-many-values": data designates more than 256 values;
 *  - "not-json": data is not JSON data (undefined in an array, a function,
 *    NaN, a Date, a cycle...) or a string is not well-formed Unicode;
 *  - "invalid-argument": a bad pattern, pin or argument;
 *  - "unsupported": WebCrypto is missing (browsers offer it in secure
 *    contexts only) or failed.
 */
export class E2EEError extends Error {
  /**
   * @param {string} code
   * @param {string} message
   * @param {{cause?: unknown}} [options]
   */
  constructor(code, message, options) {
    super(message, options);
    this.name = "E2EEError";
    this.code = code;
  }
}

function fail(code, message) {
  return new E2EEError(code, "e2ee: " + message);
}

function unsuitable(reason) {
  return fail("unsuitable-key", "key not eligible: " + reason);
}

// ---------------------------------------------------------------- base64url

const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const B64_VALUE = new Int16Array(128).fill(-1);
for (let i = 0; i < B64.length; i++) B64_VALUE[B64.charCodeAt(i)] = i;

/** b64encode returns the base64url encoding of bytes, without padding. */
function b64encode(bytes) {
  let out = "";
  let i = 0;
  for (; i + 2 < bytes.length; i += 3) {
    const n = (bytes[i] << 16) | (bytes[i + 1] << 8) | bytes[i + 2];
    out += B64[n >> 18] + B64[(n >> 12) & 63] + B64[(n >> 6) & 63] + B64[n & 63];
  }
  if (i + 1 === bytes.length) {
    const n = bytes[i] << 16;
    out += B64[n >> 18] + B64[(n >> 12) & 63];
  } else if (i + 2 === bytes.length) {
    const n = (bytes[i] << 16) | (bytes[i + 1] << 8);
    out += B64[n >> 18] + B64[(n >> 12) & 63] + B64[(n >> 6) & 63];
  }
  return out;
}

/**
 * b64decode decodes base64url without padding and returns the bytes, or null
 * when s is not base64url. With strict, it also refuses a non-canonical
 * encoding (unused bits of the last character set), as Go's
 * base64.RawURLEncoding.Strict() does.
 */
function b64decode(s, strict) {
  if (s.length % 4 === 1) return null;
  const out = new Uint8Array(Math.floor((s.length * 6) / 8));
  let acc = 0;
  let bits = 0;
  let j = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const v = c < 128 ? B64_VALUE[c] : -1;
    if (v < 0) return null;
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[j++] = (acc >> bits) & 0xff;
    }
    acc &= (1 << bits) - 1;
  }
  if (strict && acc !== 0) return null;
  return out;
}

// ------------------------------------------------------------------ strings

/** wellFormed reports whether s has no lone surrogate. */
function wellFormed(s) {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) {
      const d = s.charCodeAt(i + 1);
      if (!(d >= 0xdc00 && d <= 0xdfff)) return false;
      i++;
    } else if (c >= 0xdc00 && c <= 0xdfff) {
      return false;
    }
  }
  return true;
}

/**
 * goJSONString returns s as a JSON string exactly as the Go Encryptor writes
 * it into a JWE header (go-jose's encoder): \" \\ \n \r \t, \u00XX for the
 * other control characters and for < > &, \u2028 and \u2029, and every other
 * character as itself.
 */
function goJSONString(s) {
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0);
    if (ch === '"' || ch === "\\") out += "\\" + ch;
    else if (ch === "\n") out += "\\n";
    else if (ch === "\r") out += "\\r";
    else if (ch === "\t") out += "\\t";
    else if (c < 0x20 || ch === "<" || ch === ">" || ch === "&") out += "\\u00" + c.toString(16).padStart(2, "0");
    else if (c === 0x2028 || c === 0x2029) out += "\\u" + c.toString(16);
    else out += ch;
  }
  return out + '"';
}

/**
 * quote quotes s for an error message, cut to 64 UTF-8 bytes, as Go's
 * %q does (and the Go package's quote): a character that does not print
 * (a control character, a bidirectional override, a space other than
 * U+0020...) shows escaped, so that a key cannot rewrite a terminal or hide
 * text in a message.
 */
function quote(s) {
  const MAX = 64;
  const bytes = utf8.encode(s);
  const limit = Math.min(bytes.length, MAX);
  const hex = (c, n) => c.toString(16).padStart(n, "0");
  let out = '"';
  let at = 0; // UTF-8 bytes quoted so far
  for (const ch of s) {
    const c = ch.codePointAt(0);
    const size = c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
    if (at + size > limit) {
      // Go cuts inside the character: its bytes show as \x escapes.
      for (let i = at; i < limit; i++) out += "\\x" + hex(bytes[i], 2);
      break;
    }
    at += size;
    if (ch === '"' || ch === "\\") out += "\\" + ch;
    else if (ch === " " || PRINTABLE.test(ch)) out += ch;
    else if (GO_ESCAPES[ch]) out += GO_ESCAPES[ch];
    else if (c < 0x20 || c === 0x7f) out += "\\x" + hex(c, 2);
    else if (c < 0x10000) out += "\\u" + hex(c, 4);
    else out += "\\U" + hex(c, 8);
  }
  return out + (bytes.length > MAX ? '..."' : '"');
}

/** PRINTABLE matches a character that Go's unicode.IsPrint accepts, but the space. */
const PRINTABLE = /^[\p{L}\p{M}\p{N}\p{P}\p{S}]$/u;
const GO_ESCAPES = { "\x07": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v" };

const utf8 = new TextEncoder();
const utf8Fatal = new TextDecoder("utf-8", { fatal: true });

// --------------------------------------------------------------- strict JSON

/**
 * parseJSON parses text as one JSON value, as JSON.parse does, but refuses
 * duplicate member names at any depth, strings with a lone surrogate (as
 * Go's JSON v2 does), and values nested more than MAX_DEPTH levels below the
 * root. Objects have no prototype, so that reading a member reads only what
 * the text holds. It throws a SyntaxError on bad input.
 *
 * @param {string} text
 * @returns {unknown}
 */
function parseJSON(text) {
  const p = new StrictParser(text);
  const v = p.value(0);
  p.ws();
  if (p.i !== text.length) throw p.bad();
  return v;
}

/** LITERAL matches a JSON number, true, false or null at its lastIndex. */
const LITERAL = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?|true|false|null/y;

/**
 * StrictParser is parseJSON's cursor: each method reads, from offset i of
 * text, one production of the JSON grammar, and leaves i after it.
 */
class StrictParser {
  /** @param {string} text */
  constructor(text) {
    this.text = text;
    this.i = 0;
  }

  /** ws skips JSON whitespace. */
  ws() {
    const { text } = this;
    while (this.i < text.length) {
      const c = text[this.i];
      if (c !== " " && c !== "\t" && c !== "\n" && c !== "\r") break;
      this.i++;
    }
  }

  /** eat skips whitespace, then c if it comes next, and reports whether it did. */
  eat(c) {
    this.ws();
    if (this.text[this.i] !== c) return false;
    this.i++;
    return true;
  }

  /** bad returns the error for text that is not JSON at i. */
  bad() {
    return new SyntaxError("invalid JSON at offset " + this.i);
  }

  /** value reads one value, nested depth levels below the root. */
  value(depth) {
    if (depth > MAX_DEPTH) throw this.bad();
    this.ws();
    switch (this.text[this.i]) {
      case "{":
        return this.object(depth);
      case "[":
        return this.array(depth);
      case '"':
        return this.string();
      default:
        return this.literal();
    }
  }

  /** object reads an object, from its "{": one with no prototype and no duplicate member name. */
  object(depth) {
    this.i++;
    const obj = Object.create(null);
    if (this.eat("}")) return obj;
    const seen = new Set();
    do {
      this.ws();
      if (this.text[this.i] !== '"') throw this.bad();
      const name = this.string();
      if (seen.has(name)) throw new SyntaxError("duplicate member name");
      seen.add(name);
      if (!this.eat(":")) throw this.bad();
      define(obj, name, this.value(depth + 1));
    } while (this.eat(","));
    if (!this.eat("}")) throw this.bad();
    return obj;
  }

  /** array reads an array, from its "[". */
  array(depth) {
    this.i++;
    const arr = [];
    if (this.eat("]")) return arr;
    do {
      arr.push(this.value(depth + 1));
    } while (this.eat(","));
    if (!this.eat("]")) throw this.bad();
    return arr;
  }

  /** string reads a string, from its opening quote, and refuses a lone surrogate. */
  string() {
    const { text } = this;
    const start = this.i++;
    for (;;) {
      if (this.i >= text.length) throw this.bad();
      const c = text.charCodeAt(this.i);
      if (c === 0x22) break;
      if (c < 0x20) throw this.bad();
      if (c !== 0x5c) {
        this.i++;
      } else if (text[this.i + 1] === "u") {
        if (!/^[0-9a-fA-F]{4}$/.test(text.slice(this.i + 2, this.i + 6))) throw this.bad();
        this.i += 6;
      } else if (this.i + 1 < text.length && '"\\/bfnrt'.includes(text[this.i + 1])) {
        this.i += 2;
      } else {
        throw this.bad();
      }
    }
    this.i++; // the closing quote
    const s = JSON.parse(text.slice(start, this.i));
    if (!wellFormed(s)) throw new SyntaxError("lone surrogate in a string");
    return s;
  }

  /** literal reads a number, true, false or null. */
  literal() {
    LITERAL.lastIndex = this.i;
    const m = LITERAL.exec(this.text);
    if (m === null) throw this.bad();
    this.i = LITERAL.lastIndex;
    return JSON.parse(m[0]);
  }
}

/** define sets obj[name] = v as an own data member, even for "__proto__". */
function define(obj, name, v) {
  Object.defineProperty(obj, name, { value: v, enumerable: true, writable: true, configurable: true });
}

// --------------------------------------------------------------------- JWEs

const ALG = "RSA-OAEP-256";
const ENC = "A256GCM";
const IV_BYTES = 12; // 96-bit IV, as RFC 7518 requires for AES-GCM
const TAG_BYTES = 16; // 128-bit authentication tag
const MIN_ENCRYPTED_KEY_BYTES = 256; // RSA-OAEP output for the smallest eligible modulus

/**
 * isJWE reports whether s is a compact JWE that this module, or the Go
 * package, could have produced: five canonical base64url parts whose
 * protected header is a JSON object with alg RSA-OAEP-256, enc A256GCM, a
 * non-empty string kid, no zip or crit member and no duplicate member, an
 * encrypted key of at least 256 bytes, a 96-bit IV and a 128-bit tag. It is
 * the rule of the Go package's IsJWE. It decrypts nothing.
 *
 * @param {unknown} s
 * @returns {boolean}
 */
export function isJWE(s) {
  if (typeof s !== "string" || !/^[A-Za-z0-9_.-]*$/.test(s)) return false;
  const parts = s.split(".");
  if (parts.length !== 5) return false;
  const raw = b64decode(parts[0], true);
  if (raw === null) return false;
  let h;
  try {
    h = parseJSON(utf8Fatal.decode(raw));
  } catch {
    return false;
  }
  if (h === null || typeof h !== "object" || Array.isArray(h)) return false;
  if (h.alg !== ALG || h.enc !== ENC || typeof h.kid !== "string" || h.kid === "") return false;
  if (Object.hasOwn(h, "zip") || Object.hasOwn(h, "crit")) return false;
  const len = (p) => (b64decode(p, true) ?? { length: -1 }).length;
  return (
    len(parts[1]) >= MIN_ENCRYPTED_KEY_BYTES &&
    len(parts[2]) === IV_BYTES &&
    len(parts[3]) >= 0 &&
    len(parts[4]) === TAG_BYTES
  );
}

// --------------------------------------------------------------------- keys

const MIN_MODULUS_BITS = 2048;
// The bounds on the cost of one encryption: the worst eligible key costs at
// most 8x the provider's 4096-bit key (e = 65537) per value.
const MAX_MODULUS_BITS = 8192;
const MAX_EXPONENT = 65537;
const PRIVATE_MEMBERS = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];
const MAX_KEY_BYTES = 256 << 10; // fetchKey refuses larger key documents

/** What importKey keeps of a key, out of reach of the page: handle -> state. */
const keys = new WeakMap();

/**
 * optionalString returns jwk[name], "" for null, and undefined when absent,
 * as Go's ParseKey reads an optional string member; it throws a reason when
 * the member is not a string.
 */
function optionalString(jwk, name) {
  if (!Object.hasOwn(jwk, name)) return undefined;
  const v = jwk[name];
  if (v === null) return "";
  if (typeof v !== "string") throw name + " is not a string";
  return v;
}

/** bigMember returns the unsigned big-endian integer jwk[name], leading zeros stripped. */
function bigMember(jwk, name) {
  const s = optionalString(jwk, name);
  if (s === undefined) throw name + " is missing";
  const b = b64decode(s.replace(/=+$/, ""), false);
  if (b === null) throw name + " is not base64url";
  if (b.length === 0) throw name + " is empty";
  let i = 0;
  while (i < b.length && b[i] === 0) i++;
  return b.subarray(i);
}

function bitLength(b) {
  if (b.length === 0) return 0;
  return (b.length - 1) * 8 + (32 - Math.clz32(b[0]));
}

/**
 * checkJWK validates one JWK object as Go's ParseKey does and returns its
 * kid, alg, and canonical n and e. It throws a reason string, which never
 * contains key material.
 */
function checkJWK(jwk) {
  if (jwk === null || typeof jwk !== "object" || Array.isArray(jwk)) throw "not a JSON object";
  const present = PRIVATE_MEMBERS.filter((m) => Object.hasOwn(jwk, m));
  if (present.length > 0) {
    throw `key has private members (${present.join(", ")}); a client needs only the public key`;
  }
  const kty = optionalString(jwk, "kty");
  if (kty === undefined) throw "kty is missing";
  if (kty !== "RSA") throw `kty is ${quote(kty)}, want "RSA"`;
  const use = optionalString(jwk, "use");
  if (use !== undefined && use !== "enc") throw `use is ${quote(use)}, want "enc"`;
  if (Object.hasOwn(jwk, "key_ops")) {
    const ops = jwk.key_ops;
    if (!Array.isArray(ops) || !ops.every((o) => typeof o === "string")) throw "key_ops is not an array of strings";
    if (!ops.includes("encrypt") && !ops.includes("wrapKey")) throw `key_ops allows neither "encrypt" nor "wrapKey"`;
  }
  const alg = optionalString(jwk, "alg");
  if (alg !== undefined && alg !== ALG && alg !== "RSA-OAEP") throw `alg is ${quote(alg)}, want "RSA-OAEP-256" or "RSA-OAEP"`;
  const kid = optionalString(jwk, "kid") ?? "";
  if (kid === "") throw "kid is missing or empty";
  if (!wellFormed(kid)) throw "kid is not well-formed Unicode";
  const n = bigMember(jwk, "n");
  const e = bigMember(jwk, "e");
  const eBits = bitLength(e);
  if (eBits > 32) throw `public exponent of ${eBits} bits is larger than ${MAX_EXPONENT}`;
  const ev = e.reduce((acc, x) => acc * 256 + x, 0);
  if (ev > MAX_EXPONENT) throw `public exponent ${ev} is larger than ${MAX_EXPONENT}`;
  const bits = bitLength(n);
  if (bits === 0) throw "modulus is not positive";
  if (bits < MIN_MODULUS_BITS) throw `modulus has ${bits} bits, need at least ${MIN_MODULUS_BITS}`;
  if (bits > MAX_MODULUS_BITS) throw `modulus has ${bits} bits, at most ${MAX_MODULUS_BITS} are accepted`;
  if ((n[n.length - 1] & 1) === 0) throw "modulus is even";
  if (ev < 3) throw `public exponent ${ev} is less than 3`;
  if (ev % 2 === 0) throw `public exponent ${ev} is even`;
  return { kid, alg, n: b64encode(n), e: b64encode(e), bits };
}

/**
 * parsePins validates thumbprint pins: undefined means none; otherwise a
 * non-empty array of RFC 7638 SHA-256 thumbprints, base64url without
 * padding (43 characters).
 */
function parsePins(thumbprints) {
  if (thumbprints === undefined) return null;
  if (!Array.isArray(thumbprints) || thumbprints.length === 0) {
    throw fail("invalid-argument", "thumbprints must be a non-empty array of RFC 7638 SHA-256 thumbprints (omit it to accept any key)");
  }
  for (const [i, t] of thumbprints.entries()) {
    const b = typeof t === "string" && t.length === 43 ? b64decode(t, true) : null;
    if (b === null || b.length !== 32) {
      throw fail("invalid-argument", `thumbprints[${i}] is not an RFC 7638 SHA-256 thumbprint: want 43 base64url characters`);
    }
  }
  return new Set(thumbprints);
}

/** thumbprint returns the RFC 7638 SHA-256 thumbprint of a checked key. */
async function thumbprint(k) {
  const canonical = `{"e":"${k.e}","kty":"RSA","n":"${k.n}"}`;
  return b64encode(new Uint8Array(await subtle.digest("SHA-256", utf8.encode(canonical))));
}

/**
 * importKey takes a JWK object, as KeyHandler serves it (or as JSON.parse
 * returns it), and returns a key handle for encryptString and encryptFields.
 *
 * It refuses what the Go package's ParseKey refuses: a key is eligible only
 * if kty is "RSA"; the modulus has 2048 to 8192 bits and is odd; the public
 * exponent is odd, at least 3 and at most 65537 (so that the worst eligible
 * key costs at most 8x the provider's 4096-bit key per value, in the browser
 * too); use is absent or "enc"; key_ops is absent or contains "encrypt" or
 * "wrapKey"; alg is absent, "RSA-OAEP-256" or "RSA-OAEP"; kid is non-empty;
 * and it has no private members (d, p, q...).
 * Whatever the key's alg says, every JWE made with it uses RSA-OAEP-256.
 *
 * It also takes a JWK Set ({"keys": [...]}), as ParseKey does: ineligible
 * keys are skipped, and among several eligible keys the first whose alg is
 * "RSA-OAEP-256" is chosen, else the first in set order.
 *
 * thumbprints, when given, pins the key: only a key whose RFC 7638 SHA-256
 * thumbprint (base64url, 43 characters) is listed is accepted, so that a
 * compromised relay cannot hand the page a key of its own. A malformed pin,
 * or an empty list, is an error.
 *
 * The handle is a frozen object with kid, thumbprint and modulusBits; only
 * handles that importKey returned are accepted by the other functions.
 *
 * @param {object} jwk
 * @param {{thumbprints?: string[]}} [options]
 * @returns {Promise<Readonly<{kid: string, thumbprint: string, modulusBits: number}>>}
 */
export async function importKey(jwk, { thumbprints } = {}) {
  const pins = parsePins(thumbprints);
  if (!subtle) throw fail("unsupported", "WebCrypto is not available (browsers offer it in secure contexts only: https, or http on localhost)");
  if (jwk === null || typeof jwk !== "object" || Array.isArray(jwk)) throw fail("unsuitable-key", "key is not a JSON object");

  const isSet = Object.hasOwn(jwk, "keys") && !Object.hasOwn(jwk, "kty");
  if (!isSet) {
    let k;
    try {
      k = checkJWK(jwk);
    } catch (reason) {
      throw unsuitable(String(reason));
    }
    k.thumbprint = await thumbprint(k);
    if (pins && !pins.has(k.thumbprint)) throw unsuitable(`thumbprint ${k.thumbprint} is not pinned`);
    return makeHandle(k);
  }

  const set = jwk.keys;
  if (!Array.isArray(set)) throw fail("unsuitable-key", "JWK Set: keys is not an array");
  if (set.length === 0) throw unsuitable("JWK Set has no keys");
  const reasons = [];
  let best = null;
  for (const [i, member] of set.entries()) {
    let k;
    try {
      k = checkJWK(member);
    } catch (reason) {
      const kid = member && typeof member === "object" && typeof member.kid === "string" ? ` (kid ${quote(member.kid)})` : "";
      reasons.push(`key ${i}${kid}: ${reason}`);
      continue;
    }
    k.thumbprint = await thumbprint(k);
    if (pins && !pins.has(k.thumbprint)) {
      reasons.push(`key ${i} (kid ${quote(k.kid)}): thumbprint ${k.thumbprint} is not pinned`);
      continue;
    }
    if (best === null || (best.alg !== ALG && k.alg === ALG)) best = k;
  }
  if (best === null) throw unsuitable("no eligible key in JWK Set: " + reasons.join("; "));
  return makeHandle(best);
}

/** makeHandle imports a checked key into WebCrypto and returns its handle. */
async function makeHandle(k) {
  let cryptoKey;
  try {
    cryptoKey = await subtle.importKey(
      "jwk",
      { kty: "RSA", n: k.n, e: k.e, alg: ALG, ext: true },
      { name: "RSA-OAEP", hash: "SHA-256" },
      false,
      ["encrypt"],
    );
  } catch (err) {
    throw new E2EEError("unsuitable-key", "e2ee: key not eligible: WebCrypto refused it", { cause: err });
  }
  const header = `{"alg":"${ALG}","enc":"${ENC}","kid":${goJSONString(k.kid)}}`;
  const protectedHeader = b64encode(utf8.encode(header));
  const handle = Object.freeze({ kid: k.kid, thumbprint: k.thumbprint, modulusBits: k.bits });
  keys.set(handle, { cryptoKey, protectedHeader, aad: utf8.encode(protectedHeader) });
  return handle;
}

/**
 * fetchKey fetches the key document at url (the relay's KeyHandler) and
 * imports it with importKey, pins included. The URL must be https, or http
 * on localhost, 127.0.0.0/8 or [::1]; a relative URL is resolved against the
 * page's address. Redirects, a status other than 200, a document over
 * 256 KiB, and a document with duplicate member names are refused. Pins are
 * checked before anything is fetched.
 *
 * @param {string | URL} url
 * @param {{thumbprints?: string[], signal?: AbortSignal}} [options]
 */
export async function fetchKey(url, { thumbprints, signal } = {}) {
  parsePins(thumbprints);
  let u;
  try {
    u = new URL(url, globalThis.location?.href);
  } catch {
    throw fail("invalid-argument", "key URL is not a URL");
  }
  const loopback = u.hostname === "localhost" || u.hostname === "[::1]" || /^127\.\d+\.\d+\.\d+$/.test(u.hostname);
  if (u.protocol !== "https:" && !(u.protocol === "http:" && loopback)) {
    throw fail("invalid-argument", "key URL must be https (or http on localhost)");
  }

  let text;
  try {
    const resp = await fetch(u, { headers: { Accept: "application/json" }, redirect: "error", credentials: "same-origin", signal });
    if (resp.status !== 200) {
      resp.body?.cancel();
      throw fail("key-unavailable", `key endpoint answered ${resp.status}`);
    }
    text = await readBounded(resp);
  } catch (err) {
    if (err instanceof E2EEError) throw err;
    throw new E2EEError("key-unavailable", `e2ee: fetching the key: ${err?.name ?? "error"}`, { cause: err });
  }
  let jwk;
  try {
    jwk = parseJSON(text);
  } catch {
    throw fail("unsuitable-key", "key document is not JSON without duplicate member names");
  }
  return importKey(jwk, { thumbprints });
}

/** readBounded reads a response body of at most MAX_KEY_BYTES as UTF-8. */
async function readBounded(resp) {
  const reader = resp.body.getReader();
  const chunks = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.length;
    if (size > MAX_KEY_BYTES) {
      reader.cancel();
      throw fail("key-unavailable", `key document exceeds ${MAX_KEY_BYTES} bytes`);
    }
    chunks.push(value);
  }
  const all = new Uint8Array(size);
  let off = 0;
  for (const c of chunks) {
    all.set(c, off);
    off += c.length;
  }
  try {
    return utf8Fatal.decode(all);
  } catch {
    throw fail("unsuitable-key", "key document is not UTF-8");
  }
}

// --------------------------------------------------------------- encryption

function stateOf(key) {
  const st = key !== null && typeof key === "object" ? keys.get(key) : undefined;
  if (!st) throw fail("invalid-argument", "key is not a key that importKey or fetchKey returned");
  return st;
}

/**
 * encryptString returns the compact JWE of value, exactly as the Go
 * Encryptor makes it: protected header {"alg":"RSA-OAEP-256","enc":"A256GCM",
 * "kid":...} (byte for byte the Go header), a fresh 256-bit content key
 * wrapped with RSA-OAEP-256, a fresh 96-bit IV, A256GCM over the UTF-8 bytes
 * of value with the ASCII of the encoded header as additional data, and every
 * part in base64url without padding.
 *
 * value must be a string; one with a lone surrogate (not well-formed
 * Unicode, which UTF-8 cannot encode) is refused, as Go refuses invalid
 * UTF-8. The empty string is encrypted like any other.
 *
 * @param {object} key a handle from importKey or fetchKey
 * @param {string} value
 * @returns {Promise<string>}
 */
export async function encryptString(key, value) {
  const st = stateOf(key);
  if (typeof value !== "string") throw fail("invalid-argument", "value to encrypt is not a string");
  if (!wellFormed(value)) throw fail("not-json", "value to encrypt is not well-formed Unicode (a lone surrogate)");
  return seal(st, value);
}

async function seal(st, value) {
  const plaintext = utf8.encode(value);
  const cek = globalThis.crypto.getRandomValues(new Uint8Array(32));
  const iv = globalThis.crypto.getRandomValues(new Uint8Array(IV_BYTES));
  try {
    const aes = await subtle.importKey("raw", cek, { name: "AES-GCM" }, false, ["encrypt"]);
    const [wrapped, sealed] = await Promise.all([
      subtle.encrypt({ name: "RSA-OAEP" }, st.cryptoKey, cek),
      subtle.encrypt({ name: "AES-GCM", iv, additionalData: st.aad, tagLength: TAG_BYTES * 8 }, aes, plaintext),
    ]);
    const ct = new Uint8Array(sealed);
    const cut = ct.length - TAG_BYTES;
    return [
      st.protectedHeader,
      b64encode(new Uint8Array(wrapped)),
      b64encode(iv),
      b64encode(ct.subarray(0, cut)),
      b64encode(ct.subarray(cut)),
    ].join(".");
  } catch (err) {
    throw new E2EEError("unsupported", `e2ee: encrypt: WebCrypto failed (${err?.name ?? "error"})`, { cause: err });
  } finally {
    cek.fill(0);
    plaintext.fill(0);
  }
}

// ------------------------------------------------------------------- fields

/** MAX_VALUES bounds the designated values of one call, as Go's DefaultMaxValues does. */
const MAX_VALUES = 256;
/** MAX_DEPTH bounds the nesting of data (and of a key document). */
const MAX_DEPTH = 1000;

/**
 * compilePatterns parses field patterns as Go's NewPayload does: a JSON
 * Pointer (RFC 6901, ~0 and ~1 escapes) whose segments may be "*", any
 * member or element; a leading "!" excludes. At least one pattern must
 * designate something.
 */
function compilePatterns(patterns) {
  if (!Array.isArray(patterns)) throw fail("invalid-argument", "patterns must be an array of field patterns");
  const out = [];
  let include = false;
  for (const f of patterns) {
    if (typeof f !== "string") throw fail("invalid-argument", "field pattern is not a string");
    let src = f;
    let exclude = false;
    if (src.startsWith("!")) {
      exclude = true;
      src = src.slice(1);
    }
    if (!src.startsWith("/")) throw fail("invalid-argument", `field pattern ${quote(f)}: want a JSON Pointer starting with /`);
    const segs = src
      .slice(1)
      .split("/")
      .map((tok) => {
        if (/~([^01]|$)/.test(tok)) throw fail("invalid-argument", `field pattern ${quote(f)}: ~ must be followed by 0 or 1`);
        const name = tok.replace(/~1/g, "/").replace(/~0/g, "~");
        const index = /^(0|[1-9][0-9]*)$/.test(tok) ? Number(tok) : -1;
        return { name, wild: tok === "*", index };
      });
    include ||= !exclude;
    out.push({ exclude, segs });
  }
  if (!include) throw fail("invalid-argument", "no field pattern designates anything");
  return out;
}

const matchName = (seg, name) => seg.wild || seg.name === name;
const matchIndex = (seg, i) => seg.wild || seg.index === i;

function isPlainObject(v) {
  if (v === null || typeof v !== "object" || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

function kindName(v) {
  if (v === null) return "null";
  if (typeof v === "string") return "a string";
  if (typeof v === "number") return "a number";
  if (typeof v === "boolean") return "a boolean";
  if (Array.isArray(v)) return "an array";
  if (isPlainObject(v)) return "an object";
  return "not JSON data";
}

/** scalar reports whether v is a JSON string, finite number or boolean. */
const scalar = (v) => typeof v === "string" || typeof v === "boolean" || (typeof v === "number" && Number.isFinite(v));
/** printable reports whether s has letters, marks, numbers, punctuation, symbols and spaces only. */
const printable = (s) => /^[\p{L}\p{M}\p{N}\p{P}\p{S} ]*$/u.test(s);

/**
 * encryptFields returns a copy of data (a parsed JSON value) in which every
 * designated string is replaced by its JWE (see encryptString); data itself
 * is not modified, and the copy shares nothing with it.
 *
 * patterns is an array of field patterns, the pattern language of the Go
 * package's NewPayload: a JSON Pointer (RFC 6901, with ~0 and ~1 escapes)
 * whose segments may be "*", any member of an object or any element of an
 * array; a pattern that begins with "!" excludes what it matches. A value is
 * designated when some pattern matches its pointer exactly and no "!"
 * pattern does ("!/payer" excludes the value at /payer only; "!/payer/*" its
 * members). A bad pattern, or no pattern that designates anything, is an
 * error.
 *
 * data must be an object or an array, as a request body is: a string,
 * number, boolean or null is an error ("shape"); a string most likely means
 * that the body was stringified (JSON.stringify) before encryptFields, and
 * would be sent as it is, in cleartext. Below the root, a value that a
 * pattern (not a "!" one) has more segments to match into must be an object,
 * an array, null or absent: a string, number or boolean there is an error
 * ("shape") that names its JSON Pointer, as with "/fields/*" and a "fields"
 * that is a stringified object.
 *
 * A designated value that is already a JWE (see isJWE), or null, is left as
 * it is, so encrypting twice equals encrypting once; an object member whose
 * value is undefined counts as absent (JSON.stringify drops it). A designated
 * number, boolean, object or array is an error ("not-string") that names its
 * JSON Pointer, never a value; so is data designating more than 256 values
 * ("too-many-values"), and data that is not JSON data ("not-json"): anything
 * but null, booleans, finite numbers, strings, arrays and plain objects, or
 * nested deeper than 1000 levels. Errors are found before anything is
 * encrypted; on any error nothing is returned.
 *
 * In error messages a member name is shown only when some pattern (a "!"
 * one too) names it literally at that depth and it is printable; every
 * other name shows as "*", since a name may carry part of a credential
 * (most passwords would pass for identifiers). Array indices show as numbers.
 *
 * @param {object} key a handle from importKey or fetchKey
 * @param {unknown} data
 * @param {string[]} patterns
 * @returns {Promise<unknown>}
 */
export async function encryptFields(key, data, patterns) {
  const st = stateOf(key);
  const walk = new FieldWalk(compilePatterns(patterns));
  if (data === null || scalar(data)) {
    const hint = typeof data === "string" ? ": was it stringified (JSON.stringify) before encryptFields?" : "";
    throw fail("shape", `data is ${kindName(data)}, not an object or an array${hint}`);
  }
  const root = { value: undefined };
  root.value = walk.copy(data, 0, walk.pats, root, "value");
  const jwes = await Promise.all(walk.found.map((f) => seal(st, f.value)));
  walk.found.forEach((f, i) => define(f.holder, f.name, jwes[i]));
  return root.value;
}

/** NO_PATTERNS is the live patterns of a value that no pattern reaches below. */
const NO_PATTERNS = Object.freeze([]);

/**
 * FieldWalk is one walk of encryptFields over its data: it copies the data,
 * matching the pointer of each value against the patterns, refuses what is
 * not JSON data or has the wrong shape, and records the designated strings
 * that are not JWEs yet, with where their JWEs go.
 */
class FieldWalk {
  /** @param {{exclude: boolean, segs: {name: string, wild: boolean, index: number}[]}[]} pats */
  constructor(pats) {
    this.pats = pats;
    /** @type {(string|number)[]} member names and indices from the root to the value at hand */
    this.path = [];
    /** @type {{holder: object, name: string|number, value: string}[]} the strings to encrypt */
    this.found = [];
    this.count = 0; // the designated values so far, null and JWEs included
  }

  /**
   * copy returns a copy of v, the value at this.path, depth levels below the
   * root; live are the patterns that match the path so far, and holder[name]
   * is where the copy goes.
   */
  copy(v, depth, live, holder, name) {
    if (depth > MAX_DEPTH) throw this.notJSON(`nested deeper than ${MAX_DEPTH} levels (or cyclic)`);
    const { designated, descend } = reach(live, depth);
    if (designated) return this.designate(v, holder, name);
    if (descend && scalar(v)) {
      const hint = typeof v === "string" ? ": was it stringified twice?" : "";
      throw fail("shape", `${this.pointer()} is ${kindName(v)}, not an object or an array${hint}`);
    }
    if (v === null || typeof v === "string" || typeof v === "boolean") return v;
    if (typeof v === "number") {
      if (!Number.isFinite(v)) throw this.notJSON("a number that JSON cannot hold");
      return v;
    }
    const below = descend ? live : NO_PATTERNS;
    if (Array.isArray(v)) return this.array(v, depth, below);
    if (isPlainObject(v)) return this.object(v, depth, below);
    throw this.notJSON(foreign(v));
  }

  /** array returns a copy of the array v (see copy). */
  array(v, depth, live) {
    const out = new Array(v.length);
    for (let i = 0; i < v.length; i++) {
      this.path.push(i);
      if (!(i in v) || v[i] === undefined) throw this.notJSON("undefined");
      out[i] = this.copy(v[i], depth + 1, narrow(live, depth, i), out, i);
      this.path.pop();
    }
    return out;
  }

  /** object returns a copy of the plain object v (see copy), without its undefined members. */
  object(v, depth, live) {
    const out = {};
    for (const name of Object.keys(v)) {
      this.path.push(name);
      const m = v[name];
      if (m !== undefined) define(out, name, this.copy(m, depth + 1, narrow(live, depth, name), out, name));
      this.path.pop();
    }
    return out;
  }

  /** designate checks a designated value, records it when it is a string to encrypt, and returns it. */
  designate(v, holder, name) {
    if (++this.count > MAX_VALUES) {
      throw fail("too-many-values", `too many designated values: the data designates more than ${MAX_VALUES}`);
    }
    if (v === null) return v;
    if (typeof v !== "string") {
      const kind = kindName(v);
      if (kind === "not JSON data") throw this.notJSON(foreign(v));
      throw fail("not-string", `designated value is not a string: ${this.pointer() || "the root"} is ${kind}`);
    }
    if (!wellFormed(v)) throw this.notJSON("a string that is not well-formed Unicode (a lone surrogate)");
    if (!isJWE(v)) this.found.push({ holder, name, value: v });
    return v;
  }

  /**
   * pointer returns the JSON Pointer of the value at hand for an error
   * message: a member name shows only when a pattern names it literally at
   * its depth and it is printable, "*" otherwise.
   */
  pointer() {
    return this.path
      .map((tok, depth) => {
        const s = String(tok);
        if (typeof tok === "number") return "/" + s;
        const literal = this.pats.some((p) => p.segs.length > depth && !p.segs[depth].wild && p.segs[depth].name === s);
        if (literal && printable(s)) return "/" + s.replace(/~/g, "~0").replace(/\//g, "~1");
        return "/*";
      })
      .join("");
  }

  notJSON(what) {
    return fail("not-json", `data is not JSON data: ${this.pointer() || "the root"} is ${what}`);
  }
}

/**
 * reach says what the patterns live, which match a value's pointer down to
 * depth, make of the value: designated when one of them matches it exactly
 * and no "!" one does; descend when one that is not a "!" one has segments
 * left to match below it.
 */
function reach(live, depth) {
  let designated = false;
  let excluded = false;
  let descend = false;
  for (const p of live) {
    const n = p.segs.length;
    if (n === depth && p.exclude) excluded = true;
    else if (n === depth) designated = true;
    else if (n > depth && !p.exclude) descend = true;
  }
  return { designated: designated && !excluded, descend };
}

/** narrow returns the patterns of live whose segment at depth matches key, a member name or an index. */
function narrow(live, depth, key) {
  if (live.length === 0) return live;
  return live.filter((p) => p.segs.length > depth && (typeof key === "number" ? matchIndex : matchName)(p.segs[depth], key));
}

/** foreign describes a value that is not JSON data, for a "not-json" message. */
function foreign(v) {
  if (typeof v === "object") return "an object that is not a plain object or an array";
  if (typeof v === "undefined") return "undefined";
  return `a ${typeof v}`;
}
