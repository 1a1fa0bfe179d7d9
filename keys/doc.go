// Package keys is Pigeonhole's key directory: accounts, their devices, each
// device's Ed25519 auth key and Signal identity key, its signed prekey (whose
// XEdDSA signature is verified against the identity key) and its one-time
// prekeys, each handed out exactly once, and its post-quantum (ML-KEM-1024)
// prekeys: one-time ones, each handed out once, and a last-resort one,
// all signed by the identity key.
//
// It implements the storage side of spec/protocol.md sections
// "Registration", "Keys" and "KEM prekeys". Everything it stores is public
// key material; the relay never holds a private key.
//
// Layout in Pebble (all keys start with "k/"):
//
//	k/a/<account:16>                      next device id (uint32 BE)
//	k/d/<account:16><device:4>            device record (see record.go)
//	k/p/<account:16><device:4><prekey:4>  one-time prekey public key (33 bytes)
//	k/k/<account:16><device:4><prekey:4>  one-time KEM prekey: public key (1569) signature (64)
//
// A device's last-resort KEM prekey lives in its device record.
package keys
