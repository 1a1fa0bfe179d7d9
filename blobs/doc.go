// Package blobs keeps the relay's encrypted media in an S3-compatible
// object store (MinIO in development and tests, AWS S3 or another in
// production).
//
// The relay never carries blob bytes itself: it hands clients Grants,
// presigned HTTP requests that upload or download one blob directly to or
// from the store. An upload grant binds the blob's exact size into its
// signature, so the store refuses any other body length, and a bucket
// lifecycle rule deletes every blob after a fixed lifetime. Blobs are
// end-to-end encrypted before they reach the store; this package never sees
// plaintext.
package blobs
