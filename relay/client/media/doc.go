// Package media is the client-side encryption of attachments.
//
// A file is encrypted under a fresh random key (NewKey) with the STREAM
// construction of Hoang, Reyhanitabar, Rogaway and Vizár over AES-256-GCM,
// in constant memory, and padded with zero bytes to a size bucket
// (PaddedSize) so that the ciphertext's length reveals only the bucket.
// The ciphertext goes to blob storage; the relay never sees the key. The
// key, the ciphertext's SHA-256 digest and the plaintext's size travel
// inside an end-to-end message, and the receiver needs all three to
// Decrypt.
//
// The wire format is described in FORMAT.md beside this file and pinned
// by spec/testdata/vectors/media.json.
//
// Decrypt authenticates chunk by chunk, so its destination may receive
// the plaintext of earlier chunks before a later chunk, the length or the
// digest is found wrong. Callers must write to a temporary file and
// discard it when Decrypt returns an error.
//
// This package imports only the standard library.
package media
