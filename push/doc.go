// Package push wakes devices that are not connected with content-free
// APNs and FCM notifications.
//
// A push carries nothing: no sender, account, message id or count, only the
// instruction "fetch" (spec/protocol.md, "Push"). The relay calls Notify
// when it queues mail for a device without a session; Notify never blocks:
// it coalesces (one push per device per window, reset by Connected), looks
// up the device's token and hands the push to a bounded queue that a few
// workers drain. What the queue cannot take is dropped and counted.
// Workers retry throttling and server errors with backoff, bounded in
// attempts and time, and delete a token the provider reports dead.
//
// Tokens are stored in Pebble sealed with AES-256-GCM under a key the
// operator holds, so a copy of the database does not reveal them, and they
// are never logged in full.
package push
