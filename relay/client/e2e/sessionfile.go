package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"

	"go.mau.fi/libsignal/protocol"
	"go.mau.fi/libsignal/state/record"
)

// Handshakes a session can be started with, as the session file names
// them.
const (
	handshakeX3DH  = "x3dh"  // libsignal's X3DH
	handshakePQXDH = "pqxdh" // this package's PQXDH (pqxdh.go)
)

// sessionFileVersion is the version of the session file layout below.
const sessionFileVersion = 1

// sessionDoc is what sessions/<account hex>.<device> holds: libsignal's
// session record and what libsignal's record has no room for, in JSON.
//
// Handshake says which key agreement the record's sessions come from.
// It only ever moves from x3dh to pqxdh: once a PQXDH session exists
// with a device, an X3DH initial message from it is refused
// (ErrDowngrade), so neither a relay that strips KEM prekeys nor anyone
// else turns it back into a session without a KEM secret. Files written
// before PQXDH existed hold libsignal's bare record (JSON too, with the
// keys SessionState and PreviousStates, never "v") and read as x3dh.
//
// Pending holds, while this device is the initiator and the responder has
// not answered yet, the KEM prekey id and ciphertext that every initial
// message of that session carries, keyed by the session's base key.
type sessionDoc struct {
	Version   int             `json:"v"`
	Handshake string          `json:"handshake"`
	Pending   []pendingKEM    `json:"pending,omitempty"`
	Record    json.RawMessage `json:"record"` // libsignal's record, itself JSON
}

// pendingKEM is the KEM part of an unacknowledged PQXDH initial message.
type pendingKEM struct {
	BaseKey    []byte `json:"base_key"` // 33-byte Signal public key
	KEMPreKey  uint32 `json:"kem_prekey_id"`
	Ciphertext []byte `json:"kem_ciphertext"` // KEMCiphertextSize bytes
}

// pending returns the KEM part for the session with base key, or nil.
func (f *sessionDoc) pending(baseKey []byte) *pendingKEM {
	for i := range f.Pending {
		if bytes.Equal(f.Pending[i].BaseKey, baseKey) {
			return &f.Pending[i]
		}
	}
	return nil
}

func (s *txStore) loadSessionFile(a *protocol.SignalAddress) (*record.Session, *sessionDoc, error) {
	b, err := s.tx.Get(sessionKey(a))
	if err != nil {
		return nil, nil, err
	}
	f := &sessionDoc{Version: sessionFileVersion, Handshake: handshakeX3DH}
	if b == nil {
		return record.NewSession(ser.Session, ser.State), f, nil
	}
	var probe struct {
		Version *int `json:"v"`
	}
	if err := json.Unmarshal(b, &probe); err != nil {
		return nil, nil, fmt.Errorf("%w: session with %s: %v", ErrDamaged, a, err)
	}
	if probe.Version != nil {
		if err := json.Unmarshal(b, f); err != nil {
			return nil, nil, fmt.Errorf("%w: session with %s: %v", ErrDamaged, a, err)
		}
		if f.Version != sessionFileVersion || (f.Handshake != handshakeX3DH && f.Handshake != handshakePQXDH) {
			return nil, nil, fmt.Errorf("%w: session with %s: version %d, handshake %q", ErrDamaged, a, f.Version, f.Handshake)
		}
		b = f.Record
	}
	r, err := record.NewSessionFromBytes(b, ser.Session, ser.State)
	if err != nil {
		return nil, nil, fmt.Errorf("session with %s: %w", a, err)
	}
	return r, f, nil
}

// storeSessionFile writes r with f's handshake and the pending KEM parts
// that a state of r still needs (a state whose initial message was
// answered, or which was dropped from the record, needs none).
func (s *txStore) storeSessionFile(a *protocol.SignalAddress, r *record.Session, f *sessionDoc) error {
	out := sessionDoc{Version: sessionFileVersion, Handshake: f.Handshake, Record: r.Serialize()}
	if out.Handshake == "" {
		out.Handshake = handshakeX3DH
	}
	for _, st := range append([]*record.State{r.SessionState()}, r.PreviousSessionStates()...) {
		if st == nil || !st.HasUnacknowledgedPreKeyMessage() {
			continue
		}
		if p := f.pending(st.SenderBaseKey()); p != nil {
			out.Pending = append(out.Pending, *p)
		}
	}
	b, err := json.Marshal(out)
	if err != nil {
		return err
	}
	return s.tx.Put(sessionKey(a), b)
}

// PostQuantum reports whether this device's session with device dev of
// account was started with PQXDH (a KEM secret in its keys), not X3DH.
// A device with no session reports false.
func (d *Device) PostQuantum(account []byte, dev uint32) (bool, error) {
	var pq bool
	err := d.update(func(s *txStore) error {
		_, f, err := s.loadSessionFile(protocol.NewSignalAddress(addressName(account), dev))
		pq = err == nil && f.Handshake == handshakePQXDH
		return err
	})
	return pq, err
}
