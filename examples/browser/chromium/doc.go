// Package chromium tests the browser demo (examples/browser, package demo)
// in a headless Chromium: a user types credentials into the login page,
// which encrypts them with e2ee.js, and the test checks what the backend
// and the stand-in for the API received. It also measures one encryptString
// in Chromium.
//
// It is a module of its own, so that the SDK's go.mod does not carry its
// browser driver. Without a Chromium, its tests fail when the environment
// variable CI is "true", and are skipped otherwise.
package chromium
