// Package jskeys keeps the key directory in a NATS JetStream key-value
// bucket, for relays that keep no state of their own (a cluster). It
// behaves as package keys' Pebble store does; keystest holds the tests
// both pass.
//
// An account is one record (a.<account hex>): its next device id, its
// devices and the hash of its current link code, changed only by
// compare-and-set on the record's revision, so that adding a device and
// using up a link code happen together, through whichever relay. A
// device's one-time prekeys are one record (p.<account hex>.<device>),
// claimed by compare-and-set as well: a prekey is handed out once even
// when two relays fetch the same device's bundle at the same moment. The
// last day a device was seen is a record of its own (s.…), written without
// a revision check.
package jskeys
