package queue

import (
	"encoding/hex"
	"strconv"
	"strings"
)

// Token is a's text form, "<account hex>.<device>": one token of a NATS
// subject or key-value key naming the device. It holds the full account
// id: never log it.
func (a Address) Token() string {
	return hex.EncodeToString(a.Account[:]) + "." + strconv.FormatUint(uint64(a.Device), 10)
}

// ParseToken is the inverse of Token.
func ParseToken(s string) (Address, bool) {
	var a Address
	acct, dev, ok := strings.Cut(s, ".")
	if !ok || len(acct) != 2*len(a.Account) {
		return a, false
	}
	if _, err := hex.Decode(a.Account[:], []byte(acct)); err != nil {
		return a, false
	}
	d, err := strconv.ParseUint(dev, 10, 32)
	if err != nil {
		return a, false
	}
	a.Device = uint32(d)
	return a, true
}
