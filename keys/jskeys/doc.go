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
// when two relays fetch the same device's bundle at the same moment. A
// device's last-resort KEM prekey is part of its device in the account
// record; its one-time KEM prekeys (1,633 bytes each) are a record each
// (k.<account hex>.<device>.<id>) named by an index record
// (q.<account hex>.<device>) that is claimed from by compare-and-set (see
// kemprekeys.go). The last day a device was seen is a record of its own
// (s.…), written without a revision check.
//
// Every record's value ends with an HMAC-SHA256 tag under a key derived
// from the cluster key (Config.ClusterKey, shared by the relays and
// never stored in NATS), bound to the bucket's name, the record's key and
// its value. A record whose tag does not verify (written by someone with
// access to NATS but not the key) is refused with ErrBadRecord, so a NATS
// compromise cannot put an auth key, an identity key or a prekey of its
// choosing into the directory. The tag does not stop an earlier
// authentic value of the same record from being written back (undoing a
// later change, such as a revoke), nor a record from being deleted:
// access to NATS itself must be kept to the relays.
package jskeys
