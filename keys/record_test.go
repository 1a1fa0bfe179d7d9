package keys

import (
	"bytes"
	"testing"
	"time"
)

// TestDeviceRecordVersions: a version 3 record round-trips with and
// without a last-resort KEM prekey, a version 2 record (written before
// KEM prekeys) still reads, and a truncated or padded KEM part is
// refused.
func TestDeviceRecordVersions(t *testing.T) {
	d := Device{
		ID:             3,
		AuthKey:        bytes.Repeat([]byte{1}, authKeySize),
		IdentityKey:    append([]byte{curveKeyType}, bytes.Repeat([]byte{2}, 32)...),
		RegistrationID: 77,
		SignedPreKey:   SignedPreKey{ID: 4, PublicKey: append([]byte{curveKeyType}, bytes.Repeat([]byte{3}, 32)...), Signature: bytes.Repeat([]byte{4}, 64)},
		Created:        time.UnixMilli(1_800_000_000_000),
		Name:           []byte("name"),
	}
	plain := encodeDevice(d)
	// Version 2 is version 3 without the KEM part.
	v2 := append([]byte{2}, plain[1:len(plain)-1]...)
	for name, rec := range map[string][]byte{"v3": plain, "v2": v2} {
		got, err := decodeDevice(3, rec)
		if err != nil || got.KemLastResort != nil || string(got.Name) != "name" || got.RegistrationID != 77 {
			t.Fatalf("%s: %+v, %v", name, got, err)
		}
	}
	k := &KemPreKey{ID: 9, PublicKey: append([]byte{KemKeyType}, bytes.Repeat([]byte{5}, KemPublicKeySize-1)...), Signature: bytes.Repeat([]byte{6}, 64)}
	d.KemLastResort = k
	withKem := encodeDevice(d)
	got, err := decodeDevice(3, withKem)
	if err != nil || got.KemLastResort == nil || got.KemLastResort.ID != 9 ||
		!bytes.Equal(got.KemLastResort.PublicKey, k.PublicKey) || !bytes.Equal(got.KemLastResort.Signature, k.Signature) {
		t.Fatalf("with a KEM prekey: %+v, %v", got.KemLastResort, err)
	}
	for name, rec := range map[string][]byte{
		"truncated KEM part": withKem[:len(withKem)-1],
		"padded KEM part":    append(bytes.Clone(withKem), 0),
		"no KEM flag":        plain[:len(plain)-1],
		"bad KEM flag":       append(bytes.Clone(plain[:len(plain)-1]), 2),
		"padded v2":          append(bytes.Clone(v2), 0),
	} {
		if _, err := decodeDevice(3, rec); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
}
