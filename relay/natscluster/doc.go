// Package natscluster joins relays into a cluster over NATS: it implements
// relay.Cluster.
//
// Presence lives in a JetStream key-value bucket (memory storage,
// replicated): d.<account hex>.<device> holds the id of the relay with the
// device's receiving session, and r.<relay id> is each relay's heartbeat,
// written every Heartbeat. Every relay watches the bucket and keeps the
// whole picture in memory, so the push decision costs no request. A
// device counts as connected elsewhere only while its relay's heartbeat is
// younger than Expiry: when a relay dies its devices count as offline
// within Expiry, and get pushes again.
//
// Control messages go over core NATS: ph.ctl.close.<account>.<device>
// (a revoked device: every relay closes its connections) and
// ph.ctl.notify.<account>.<device> (advisory events) to every relay, and
// ph.relay.<relay id>.offer.<account>.<device> (an online-only envelope)
// to the relay holding the session.
//
// Both are authenticated with the cluster key (Config.ClusterKey), which
// the relays share and NATS never sees: a presence value ends with
// HMAC-SHA256(k_presence, bucket, key, value), and a control message
// carries HMAC-SHA256(k_control, subject, origin relay, data) in its
// Ph-Mac header, where each k is derived from the cluster key with
// HKDF-SHA256 and a label of its own. What fails the check is dropped (a
// forged device record counts as no record) and counted. The tags stop
// forgeries by someone who can reach NATS without the key, not replays of
// messages or records a relay sent earlier.
package natscluster
