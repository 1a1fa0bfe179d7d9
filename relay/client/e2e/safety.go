package e2e

import (
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"strings"

	"go.mau.fi/libsignal/fingerprint"
)

// fingerprintIterations is Signal's number of hash iterations for a
// safety number.
const fingerprintIterations = 5200

// SafetyNumber returns the 60-digit safety number of this device's
// account and a contact's account, in twelve groups of five digits. Both
// sides compute the same number; if they compare equal (read aloud, or by
// scanning), nobody is in the middle. It needs the contact's identity key,
// learnt from a message or a key fetch.
func (d *Device) SafetyNumber(contact []byte) (string, error) {
	var theirs []byte
	err := d.update(func(s *txStore) (err error) {
		theirs, err = s.tx.Get(identitiesDir + addressName(contact))
		return err
	})
	if err != nil {
		return "", err
	}
	if theirs == nil {
		return "", fmt.Errorf("e2e: no identity key known for %s…: exchange a message first", hex.EncodeToString(contact)[:6])
	}
	return d.safetyNumber(contact, theirs), nil
}

// safetyNumber is the safety number of this account and a contact whose
// identity key is theirs.
func (d *Device) safetyNumber(contact, theirs []byte) string {
	st := d.state()
	mine := fingerprintHalf(st.IdentityPublic, st.AccountID)
	other := fingerprintHalf(theirs, addressName(contact))
	digits := fingerprint.NewDisplay(mine, other).DisplayText()
	groups := make([]string, 0, len(digits)/5)
	for i := 0; i+5 <= len(digits); i += 5 {
		groups = append(groups, digits[i:i+5])
	}
	return strings.Join(groups, " ")
}

// fingerprintHalf is Signal's numeric fingerprint of one party (version
// 0): SHA-512 iterated over version || key || id, then key, 5200 times;
// the first 30 bytes.
func fingerprintHalf(key []byte, id string) []byte {
	h := append([]byte{0, 0}, key...)
	h = append(h, id...)
	for range fingerprintIterations {
		s := sha512.New()
		s.Write(h)
		s.Write(key)
		h = s.Sum(nil)
	}
	return h[:30]
}
