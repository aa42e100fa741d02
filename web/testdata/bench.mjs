// bench.mjs measures one encryptString under Node, for 2048 and 4096-bit
// keys: node web/testdata/bench.mjs [runs]
//
// It prints the median and the mean of the given number of runs (default
// 200), after 20 warm-up runs. It is a measurement, not a test.
import { readFileSync } from "node:fs";

import { encryptString, importKey } from "../e2ee.js";

const runs = Number(process.argv[2] ?? 200);

async function publicJWK(name) {
  const pem = readFileSync(new URL(`../../internal/fixture/keys/${name}.pem`, import.meta.url), "utf8");
  const der = Uint8Array.from(atob(pem.replace(/-----[^-]+-----|\s+/g, "")), (c) => c.charCodeAt(0));
  const priv = await crypto.subtle.importKey("pkcs8", der, { name: "RSA-OAEP", hash: "SHA-256" }, true, ["decrypt"]);
  const { n, e } = await crypto.subtle.exportKey("jwk", priv);
  return { kty: "RSA", n, e, kid: name };
}

for (const name of ["rsa2048a", "rsa4096"]) {
  const key = await importKey(await publicJWK(name));
  for (let i = 0; i < 20; i++) await encryptString(key, "hunter2");
  const times = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await encryptString(key, "hunter2");
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  const median = times[times.length >> 1];
  const mean = times.reduce((a, b) => a + b, 0) / times.length;
  console.log(`${key.modulusBits}-bit key: encryptString median ${(median * 1000).toFixed(0)} µs, mean ${(mean * 1000).toFixed(0)} µs over ${runs} runs (${process.version})`);
}
