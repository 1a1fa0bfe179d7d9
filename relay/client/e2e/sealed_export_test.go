package e2e

// Hooks for the external sealed-sender tests: the v1 construction on
// fixed keys.

// SealV1 seals plain from the sender identity (32-byte private key,
// 33-byte public key) to the 33-byte recipient identity key with a fixed
// 32-byte ephemeral private key.
func SealV1(senderPriv, senderPub, recipientPub, ephPriv, plain []byte) ([]byte, error) {
	return sealV1(senderPriv, senderPub, recipientPub, ephPriv, plain)
}

// OpenV1 opens a sealed message with the recipient identity.
func OpenV1(recipientPriv, recipientPub, sealed []byte) (senderPub, plain []byte, err error) {
	return openV1(recipientPriv, recipientPub, sealed)
}
