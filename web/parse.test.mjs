// A property test of e2ee.js's strict JSON parser under Node:
// node --test web/parse.test.mjs
//
// parseJSON reads key documents (fetchKey) and JWE headers (isJWE). It is
// internal to e2ee.js, which stays one file that exports its API only, so
// this test imports the module's source as it is on disk, with one line
// added that exports parseJSON, from a data: URL.
//
// The property, on thousands of random inputs: parseJSON(text) returns
// exactly what JSON.parse(text) returns when JSON.parse accepts text and the
// text has no duplicate member name in any object, no string (member names
// included) with a lone surrogate, and no value nested more than 1000 levels
// below the root; otherwise it throws a SyntaxError. The inputs are JSON
// texts written from random values (with random whitespace and escapes, and
// member names from a small pool, so that duplicates occur, some spelled
// differently), mutations of such texts, and random strings over JSON's
// alphabet. They come from a seeded PRNG: a failure names its seed and case,
// and E2EE_PARSE_SEED=n reruns the test with another seed.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";

const source = readFileSync(new URL("./e2ee.js", import.meta.url), "utf8");
const { parseJSON } = await import(
  "data:text/javascript;base64," + Buffer.from(source + "\nexport { parseJSON };\n").toString("base64")
);

/** MAX_DEPTH is e2ee.js's bound on nesting: no value deeper than 1000 levels below the root. */
const MAX_DEPTH = 1000;
const SEED = Number(process.env.E2EE_PARSE_SEED ?? 20261207);
const CASES = { written: 2000, mutated: 2000, random: 1000 };

// ------------------------------------------------------------------ oracle

/**
 * expected returns what parseJSON must do with text: {value} when it must
 * return value, {refused: why} when it must throw.
 */
function expected(text) {
  let value;
  try {
    value = JSON.parse(text);
  } catch {
    return { refused: "JSON.parse refuses it" };
  }
  if (duplicateName(text)) return { refused: "duplicate member name" };
  if (!wellFormed(value)) return { refused: "lone surrogate" };
  if (depth(value) > MAX_DEPTH) return { refused: "too deep" };
  return { value };
}

/**
 * duplicateName reports whether text, which JSON.parse accepts, has an
 * object with two members of the same name (JSON.parse keeps the last).
 */
function duplicateName(text) {
  const open = []; // per open container: the names of an object so far, or null for an array
  let name = false; // whether the next string is a member name
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === "{" || c === "[") open.push(c === "{" ? new Set() : null);
    if (c === "}" || c === "]") open.pop();
    if ("{[]},".includes(c)) name = (c === "{" || c === ",") && open.at(-1) instanceof Set;
    if (c !== '"') continue;
    let j = i + 1;
    while (text[j] !== '"') j += text[j] === "\\" ? 2 : 1;
    if (name) {
      const s = JSON.parse(text.slice(i, j + 1));
      if (open.at(-1).has(s)) return true;
      open.at(-1).add(s);
      name = false;
    }
    i = j;
  }
  return false;
}

/** wellFormed reports whether no string of v, member names included, has a lone surrogate. */
function wellFormed(v) {
  if (typeof v === "string") return v.isWellFormed();
  if (v === null || typeof v !== "object") return true;
  return Object.entries(v).every(([k, x]) => k.isWellFormed() && wellFormed(x));
}

/** depth returns how many levels below the root the deepest value of v is. */
function depth(v) {
  if (v === null || typeof v !== "object") return 0;
  return 1 + Math.max(-1, ...Object.values(v).map(depth));
}

/** same reports whether a and b are the same JSON value: numbers by Object.is, members in the same order. */
function same(a, b) {
  if (a === null || typeof a !== "object" || b === null || typeof b !== "object") return Object.is(a, b);
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  return ka.length === kb.length && ka.every((k, i) => k === kb[i] && same(a[k], b[k]));
}

/** prototypesNull reports whether every object of v (a parseJSON result) has no prototype. */
function prototypesNull(v) {
  if (v === null || typeof v !== "object") return true;
  if (!Array.isArray(v) && Object.getPrototypeOf(v) !== null) return false;
  return Object.values(v).every(prototypesNull);
}

/** show returns v for a failure message: JSON text (numbers as JavaScript writes them), cut to 200 characters. */
function show(v) {
  const s = typeof v === "string" ? JSON.stringify(v) : JSON.stringify(v, (k, x) => (typeof x === "number" ? String(x) : x));
  return s.length > 200 ? s.slice(0, 200) + "…" : s;
}

// ------------------------------------------------------------------ inputs

/** rng returns a PRNG (mulberry32) seeded with seed, and helpers that draw from it. */
function rng(seed) {
  let a = seed >>> 0;
  const float = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n) => Math.floor(float() * n);
  return { int, chance: (p) => float() < p, pick: (xs) => xs[int(xs.length)] };
}

const SPACES = ["", "", "", " ", "\n", "\t", "\r\n", "  "];
const BAD_SPACES = ["\f", "\v", "\u00a0", "\ufeff", "\u2028"];
const NAMES = ["a", "b", "id", "login", "__proto__", "constructor", "0", "1", "10", "é", "🔐", "", "a b", "\u0000"];
const CHARS = ["a", "Z", "0", " ", '"', "\\", "/", "\n", "\t", "\u0000", "\u001f", "\u007f", "é", "€", "日", "🔐", "\u2028", "\ud800", "\udc00"];
const ALPHABET = '{}[]:,"\\/ 0123456789-+.eEtrufalsnvxAFd\t\n\r\f\u00e9\ud800\udc00\u0000\u001f\u007f\u2028\ufeff'.split("");

/** writeString writes s as a JSON string, each character as itself or escaped, at random. */
function writeString(r, s) {
  let out = '"';
  for (const ch of s.split("")) {
    const c = ch.charCodeAt(0);
    const short = { '"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t", "/": "\\/", "\b": "\\b", "\f": "\\f", "\r": "\\r" }[ch];
    const hex = c.toString(16).padStart(4, "0");
    if (c < 0x20 && r.chance(0.02)) out += ch; // raw: JSON.parse refuses it
    else if (r.chance(0.15) || (c < 0x20 && !short)) out += "\\u" + (r.chance(0.5) ? hex : hex.toUpperCase());
    else if (short && (ch === '"' || ch === "\\" || c < 0x20 || r.chance(0.5))) out += short;
    else out += ch;
  }
  return out + '"';
}

/** writeNumber writes a number of JSON's grammar, with a rare long or huge one. */
function writeNumber(r) {
  const digits = (n) => Array.from({ length: n }, () => r.int(10)).join("");
  const len = r.chance(0.02) ? 300 + r.int(400) : 1 + r.int(6);
  let s = (r.chance(0.3) ? "-" : "") + (r.chance(0.2) ? "0" : 1 + r.int(9) + digits(len - 1));
  if (r.chance(0.3)) s += "." + digits(1 + r.int(5));
  if (r.chance(0.2)) s += r.pick(["e", "E"]) + r.pick(["", "+", "-"]) + digits(1 + r.int(3));
  return s;
}

/** writeValue writes a random JSON value, level levels below the root, with random whitespace. */
function writeValue(r, level) {
  const ws = () => (r.chance(0.01) ? r.pick(BAD_SPACES) : r.pick(SPACES));
  switch (r.int(level > 4 ? 6 : 9)) {
    case 0:
      return r.pick(["null", "true", "false"]);
    case 1:
    case 2:
      return writeNumber(r);
    case 3:
    case 4:
    case 5:
      return writeString(r, Array.from({ length: r.int(6) }, () => r.pick(CHARS)).join(""));
    case 6:
    case 7: {
      const items = Array.from({ length: r.int(4) }, () => ws() + writeValue(r, level + 1) + ws());
      return "[" + (items.join(",") || ws()) + "]";
    }
    default: {
      const members = Array.from({ length: r.int(5) }, () => ws() + writeString(r, r.chance(0.3) ? r.pick(["a", "b"]) : r.pick(NAMES)) + ws() + ":" + ws() + writeValue(r, level + 1) + ws());
      return "{" + (members.join(",") || ws()) + "}";
    }
  }
}

/** mutate applies one to three random edits to text. */
function mutate(r, text) {
  for (let n = 1 + r.int(3); n > 0; n--) {
    const at = r.int(text.length + 1);
    const end = at + r.int(8);
    switch (r.int(5)) {
      case 0: // delete
        text = text.slice(0, at) + text.slice(at + 1);
        break;
      case 1: // insert
        text = text.slice(0, at) + r.pick(ALPHABET) + text.slice(at);
        break;
      case 2: // replace
        text = text.slice(0, at) + r.pick(ALPHABET) + text.slice(at + 1);
        break;
      case 3: // truncate
        text = text.slice(0, at);
        break;
      default: // repeat a slice
        text = text.slice(0, end) + text.slice(at, end) + text.slice(end);
    }
  }
  return text;
}

/** inputs returns the test's inputs: edge cases, then random ones, each with a name. */
function inputs(seed) {
  const r = rng(seed);
  const nest = (n, inner, [open, close] = ["[", "]"]) => open.repeat(n) + inner + close.repeat(n);
  const out = [
    ...['{"a":1,"a":2}', '{"a":1,"\\u0061":2}', '[{"x":{"a":[],"a":{}}}]', '{"a":{"a":1}}', '"\\ud800"', '{"\\udc00":1}', '"\\ud83d\\udd10"'],
    ...['{"__proto__":{"x":1}}', "-0", "1e400", "-1e-400", "1" + "0".repeat(500), "0." + "1".repeat(450) + "e-7", " \t\n\r7 "],
    ...['"\\v"', '"\\x41"', '"\\u12"', '"\\U0041"', '"\\', '"\u001f"', '"\t"', "'a'", '{a:1}', '{"a" 1}', '["a" "b"]'],
    ...["", " ", "[1,]", '{"a":1,}', "01", "-", "1.", ".5", "1e", "+1", "\ufeff1", "\u00a01", '"\u0000"', "[1]x", "nul", "truefalse"],
    ...[nest(MAX_DEPTH + 1, ""), nest(MAX_DEPTH + 2, ""), nest(MAX_DEPTH, "1"), nest(MAX_DEPTH + 1, "1")],
    ...[nest(MAX_DEPTH, '{"a":1}'), nest(MAX_DEPTH, "{}", ['{"a":', "}"]), nest(MAX_DEPTH + 1, "{}", ['{"a":', "}"])],
  ].map((text, i) => ({ name: `edge case ${i}`, text }));
  for (let i = 0; i < CASES.written; i++) out.push({ name: `written ${i}`, text: writeValue(r, 0) });
  for (let i = 0; i < CASES.mutated; i++) out.push({ name: `mutated ${i}`, text: mutate(r, writeValue(r, 0)) });
  for (let i = 0; i < CASES.random; i++) {
    out.push({ name: `random ${i}`, text: Array.from({ length: r.int(16) }, () => r.pick(ALPHABET)).join("") });
  }
  return out;
}

// ------------------------------------------------------------------- tests

describe("parseJSON", () => {
  it(`takes what JSON.parse takes, but duplicate member names, lone surrogates and depth (seed ${SEED})`, () => {
    const tally = {};
    for (const { name, text } of inputs(SEED)) {
      const want = expected(text);
      const why = want.refused ?? "accepted";
      tally[why] = (tally[why] ?? 0) + 1;
      const where = () => `seed ${SEED}, ${name}: parseJSON(${show(text)})`;
      let got;
      try {
        got = parseJSON(text);
      } catch (err) {
        if (!(err instanceof SyntaxError)) assert.fail(`${where()} threw ${err}; want a SyntaxError`);
        if (!want.refused) assert.fail(`${where()} threw ${err}; JSON.parse returns ${show(want.value)}`);
        continue;
      }
      if (want.refused) assert.fail(`${where()} = ${show(got)}; want a SyntaxError (${want.refused})`);
      if (!same(got, want.value)) assert.fail(`${where()} = ${show(got)}; want ${show(want.value)}`);
      if (!prototypesNull(got)) assert.fail(`${where()} returned an object with a prototype`);
    }
    // The inputs reach every rule, so that the property is not met vacuously.
    for (const why of ["accepted", "JSON.parse refuses it", "duplicate member name", "lone surrogate", "too deep"]) {
      assert.ok((tally[why] ?? 0) >= 3, `only ${tally[why] ?? 0} inputs ${why}: ${JSON.stringify(tally)}`);
    }
    assert.ok(tally.accepted > CASES.written / 4, `only ${tally.accepted} inputs accepted: ${JSON.stringify(tally)}`);
  });

  it("refuses a duplicate member name that JSON.parse would let overwrite a pinned member", () => {
    assert.equal(JSON.parse('{"kty":"RSA","kty":"EC"}').kty, "EC");
    assert.throws(() => parseJSON('{"kty":"RSA","kty":"EC"}'), { name: "SyntaxError", message: "duplicate member name" });
  });
});
