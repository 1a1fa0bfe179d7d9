// Package jsqueue keeps the per-device queues in a NATS JetStream stream,
// for relays that keep no state of their own (a cluster). It behaves as
// package queue's Pebble store does, and the relay uses either through the
// same interface; queuetest holds the tests both pass.
//
// One stream holds every queue. A device's messages are on the subject
// phq.<account hex>.<device>; the stream's sequence is the message's seq,
// so a device's seqs rise but are not consecutive. Every append is one
// atomic batch (JetStream's atomic publish): the messages of all recipient
// devices and, for a send with a client message id, a dedup record on
// phd.<hash> written only if none is there (an expected last subject
// sequence of 0), with a time-to-live of the dedup window. So a send is
// stored whole or not at all, and a retried send lands once, from
// whichever relay it arrives through. Quotas are the stream's per-subject
// message limit (discard new); the byte quota of the Pebble store is not
// kept here. Lifetime is the stream's maximum age.
//
// A reader is woken through core NATS: an append publishes an empty
// message on phw.<account hex>.<device> once it is stored. Every Store
// subscribes to phw.> when it opens and wakes its own readers, so a relay
// learns of a message stored through another relay without polling. (A
// subscription per device, made when a reader starts, could miss a
// wake-up sent through another NATS server before the new interest
// reached it.)
//
// Durability is the stream's: with Replicas 3 an accepted append is on a
// quorum of two nodes before it is acknowledged (see the README's cluster
// section for the fsync policy and its cost).
package jsqueue
