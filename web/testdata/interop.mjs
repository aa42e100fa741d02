// interop.mjs runs e2ee.js for the Go tests of package web: it reads one
// JSON request on stdin and writes one JSON answer on stdout.
//
// Request: {"imports": [jwk, ...], "encrypt": [{"jwk": jwk, "values": [string, ...]}, ...],
//           "fields": [{"jwk": jwk, "data": "<JSON text>", "patterns": [...]}, ...]}
// Answer:  {"imports": [{"kid", "thumbprint", "bits"} | {"code", "message"}, ...],
//           "encrypt": [[jwe, ...] | {"code", "message"}, ...],
//           "fields": ["<JSON text>" | {"code", "message"}, ...]}
import { encryptFields, encryptString, importKey } from "../e2ee.js";

const chunks = [];
for await (const c of process.stdin) chunks.push(c);
const req = JSON.parse(Buffer.concat(chunks).toString("utf8"));

const failure = (err) => ({ code: err.code ?? err.name, message: err.message });

const answer = { imports: [], encrypt: [], fields: [] };
for (const jwk of req.imports ?? []) {
  try {
    const k = await importKey(jwk);
    answer.imports.push({ kid: k.kid, thumbprint: k.thumbprint, bits: k.modulusBits });
  } catch (err) {
    answer.imports.push(failure(err));
  }
}
for (const { jwk, values } of req.encrypt ?? []) {
  try {
    const k = await importKey(jwk);
    const jwes = [];
    for (const v of values) jwes.push(await encryptString(k, v));
    answer.encrypt.push(jwes);
  } catch (err) {
    answer.encrypt.push(failure(err));
  }
}
for (const { jwk, data, patterns } of req.fields ?? []) {
  try {
    const k = await importKey(jwk);
    answer.fields.push(JSON.stringify(await encryptFields(k, JSON.parse(data), patterns)));
  } catch (err) {
    answer.fields.push(failure(err));
  }
}
process.stdout.write(JSON.stringify(answer));
