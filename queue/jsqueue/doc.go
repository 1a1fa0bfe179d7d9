// Package jsqueue keeps the per-device queues in a NATS JetStream stream,
// for relays that keep no state of their own (a cluster). It behaves as
// package queue's Pebble store does, and the relay uses either through the
// same interface; queuetest holds the tests both pass.
//
// One stream holds every queue. A device's messages from one sending
// account are on the subject phq.<account hex>.<device>.<sender hex>, and
// a device's queue is every subject matching phq.<account hex>.<device>.*
// (reads, purges and deletes use that pattern); the stream's sequence is
// the message's seq, so a device's seqs rise but are not consecutive.
// (Relays before sender shares used phq.<account hex>.<device>; this
// version does not read those subjects: drain or recreate such a stream.) Every append is one
// atomic batch (JetStream's atomic publish): the messages of all recipient
// devices and, for a send with a client message id, a dedup record on
// phd.<hash> written only if none is there (an expected last subject
// sequence of 0), with a time-to-live of the dedup window. So a send is
// stored whole or not at all, and a retried send lands once, from
// whichever relay it arrives through. A sender's share of a device's
// queue is the stream's per-subject message limit (discard new), exact
// across relays; the device's total is counted before each append with a
// direct get per recipient device (its Nats-Num-Pending header), so
// concurrent appends can pass it by one message each. The byte quotas of the Pebble store are
// not kept here. Lifetime is the stream's maximum age.
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
