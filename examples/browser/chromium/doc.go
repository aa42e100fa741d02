// Package chromium tests the browser demo (examples/browser) in a headless
// Chromium: a user types credentials into the login page, which encrypts
// them with e2ee.js, and the test checks what the backend and the stand-in
// for the API received. It also measures one encryptString in Chromium.
//
// It is a module of its own, so that the SDK's go.mod does not carry its
// browser driver. It serves the demo with package
// examples/browser/internal/demo, which it may import although it is
// another module: Go's rule for internal packages goes by import path, and
// this module's path lies below examples/browser. Without a Chromium, its
// tests fail when the environment variable CI is "true", and are skipped
// otherwise.
package chromium
