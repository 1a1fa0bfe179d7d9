package messenger

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/pigeonhole/pigeonhole/relay/client"
	"github.com/pigeonhole/pigeonhole/relay/client/e2e"
)

// KeyScheduleRecord is the Records key under which the messenger keeps
// when it last replaced the signed prekey (Unix milliseconds, decimal;
// surrounding white space is ignored). A Store may keep it anywhere, as
// cmd/pigeon keeps it in its state folder's keys-rotated file.
const KeyScheduleRecord = "keys/signed-rotated"

// keyCheckEvery is how often Run looks at the signed prekey's age.
const keyCheckEvery = time.Hour

// maxUpload is the most one-time prekeys one upload may carry.
const maxUpload = 100

// noteRotation records that the signed prekey was replaced at now.
func noteRotation(r Records, now time.Time) error {
	return r.Put(KeyScheduleRecord, []byte(strconv.FormatInt(now.UnixMilli(), 10)))
}

// RefillPreKeys brings this device's one-time prekeys on the relay, X25519
// and ML-KEM-1024, up to Config.PreKeys: remaining and kemRemaining are
// how many of each the relay holds, as its low notice (or
// relay/client.Conn.PreKeyCounts) says. A kind that is not low is left
// alone. Run does this on the relay's low notice; a program with a
// receive loop of its own calls it. The X25519 ones go first; an error
// stops the refill (what was uploaded stays).
func (m *Messenger) RefillPreKeys(ctx context.Context, remaining, kemRemaining int) error {
	if err := m.refillX25519(ctx, remaining); err != nil {
		return err
	}
	return m.refillKEMs(ctx, kemRemaining)
}

// PreKeyCounts is what the relay holds for this device: how many
// one-time prekeys of each kind, and whether it has a last-resort KEM
// prekey.
func (m *Messenger) PreKeyCounts(ctx context.Context) (*client.PreKeyCounts, error) {
	var counts *client.PreKeyCounts
	err := m.conn(ctx, func(c *client.Conn) error {
		var err error
		counts, err = c.PreKeyCounts(ctx)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("messenger: prekey status: %w", err)
	}
	return counts, nil
}

// refill is RefillPreKeys for the X25519 kind, logging a failure (Run's
// use).
func (m *Messenger) refill(ctx context.Context, remaining int) {
	if err := m.refillX25519(ctx, remaining); err != nil {
		m.log.Warn("could not refill one-time prekeys", "err", err)
	}
}

// refillKEM is RefillPreKeys for the KEM kind, logging a failure (Run's
// use). Contacts then start PQXDH sessions with a one-time KEM prekey
// rather than the last-resort one.
func (m *Messenger) refillKEM(ctx context.Context, remaining int) {
	if err := m.refillKEMs(ctx, remaining); err != nil {
		m.log.Warn("could not refill one-time KEM prekeys", "err", err)
	}
}

func (m *Messenger) refillX25519(ctx context.Context, remaining int) error {
	return m.topUp(ctx, "prekeys", remaining, func(n int) (func(*client.Conn) error, error) {
		pks, err := m.store.NewPreKeys(n)
		return func(c *client.Conn) error { _, err := c.UploadPreKeys(ctx, pks); return err }, err
	})
}

func (m *Messenger) refillKEMs(ctx context.Context, remaining int) error {
	return m.topUp(ctx, "KEM prekeys", remaining, func(n int) (func(*client.Conn) error, error) {
		ks, err := m.store.NewKEMPreKeys(n)
		return func(c *client.Conn) error { _, err := c.UploadKemPreKeys(ctx, e2e.UploadAll(ks)); return err }, err
	})
}

// topUp brings one kind of one-time prekeys on the relay from remaining
// up to the configured number, at most maxUpload per upload: newKeys
// makes and stores n keys and returns their upload, which is repeated
// as it is if the connection drops under it. Nothing happens when that
// kind is not low (the low notice covers both kinds).
func (m *Messenger) topUp(ctx context.Context, kind string, remaining int, newKeys func(n int) (func(*client.Conn) error, error)) error {
	want := m.cfg.preKeys() - remaining
	if want <= 0 {
		return nil
	}
	for left := want; left > 0; {
		n := min(left, maxUpload)
		upload, err := newKeys(n)
		if err != nil {
			return fmt.Errorf("messenger: make one-time %s: %w", kind, err)
		}
		if err := m.conn(ctx, upload); err != nil {
			return fmt.Errorf("messenger: upload one-time %s: %w", kind, err)
		}
		left -= n
	}
	m.log.Info("uploaded new one-time "+kind, "count", want)
	return nil
}

// keySchedule rotates the signed prekey when it is due, checking at
// start and then every keyCheckEvery, until ctx ends.
func (m *Messenger) keySchedule(ctx context.Context) {
	t := time.NewTicker(keyCheckEvery)
	defer t.Stop()
	for {
		if _, err := m.rotateIfDue(ctx, time.Now()); err != nil && ctx.Err() == nil {
			m.log.Warn("signed prekey rotation failed; trying again later", "err", err)
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

// RotateKeysIfDue replaces the signed prekey and the last-resort KEM
// prekey at the relay (RotateSignedPreKey) when the last replacement is
// older than Config.SignedPreKeyRotationHours, and reports whether it
// did. A store that has no record of one (KeyScheduleRecord) starts
// counting now. Run does this on schedule; a program with a receive loop
// of its own calls it.
func (m *Messenger) RotateKeysIfDue(ctx context.Context) (bool, error) {
	return m.rotateIfDue(ctx, time.Now())
}

func (m *Messenger) rotateIfDue(ctx context.Context, now time.Time) (bool, error) {
	b, err := m.store.Get(KeyScheduleRecord)
	if err != nil {
		return false, fmt.Errorf("messenger: %w", err)
	}
	if b == nil {
		return false, noteRotation(m.store, now)
	}
	ms, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err == nil && now.Sub(time.UnixMilli(ms)) < m.cfg.rotation() {
		return false, nil
	}
	if err := m.RotateSignedPreKey(ctx); err != nil {
		return false, err
	}
	return true, nil
}

// RotateSignedPreKey replaces this device's signed prekey now: a new one
// is made, uploaded and recorded; the previous ones are kept for a while
// to open prekey messages made from bundles fetched before. Run does it
// on schedule (Config.SignedPreKeyRotationHours).
func (m *Messenger) RotateSignedPreKey(ctx context.Context) error {
	spk, err := m.store.RotateSignedPreKey()
	if err != nil {
		return fmt.Errorf("messenger: %w", err)
	}
	err = m.conn(ctx, func(c *client.Conn) error { return c.RotateSignedPreKey(ctx, spk) })
	if err != nil {
		return fmt.Errorf("messenger: %w", err)
	}
	if err := m.rotateLastResortKEM(ctx); err != nil {
		return err
	}
	m.log.Info("rotated the signed prekey and the last-resort KEM prekey")
	return noteRotation(m.store, time.Now())
}

// lastResortKey is the record listing the last-resort KEM prekeys this
// messenger set (ids, decimal, comma-separated, oldest first).
const lastResortKey = "keys/kem-last-resort"

// keptLastResort is how many last-resort KEM prekeys stay: the one the
// relay hands out and the one before it, for initial messages made from
// a bundle fetched before the rotation.
const keptLastResort = 2

// rotateLastResortKEM replaces the last-resort KEM prekey at the relay,
// on the signed prekey's schedule, and drops the private parts of those
// older than the previous one. (The one a device registered with is not
// in the list, so it stays.)
func (m *Messenger) rotateLastResortKEM(ctx context.Context) error {
	k, err := m.store.NewLastResortKEMPreKey()
	if err != nil {
		return fmt.Errorf("messenger: %w", err)
	}
	if err := m.conn(ctx, func(c *client.Conn) error { return c.RotateLastResortKemPreKey(ctx, k.Upload()) }); err != nil {
		return fmt.Errorf("messenger: %w", err)
	}
	b, err := m.store.Get(lastResortKey)
	if err != nil {
		return err
	}
	var ids []string
	if len(b) > 0 {
		ids = strings.Split(string(b), ",")
	}
	ids = append(ids, strconv.FormatUint(uint64(k.ID), 10))
	for len(ids) > keptLastResort {
		if id, err := strconv.ParseUint(ids[0], 10, 32); err == nil {
			if err := m.store.RemoveKEMPreKey(uint32(id)); err != nil {
				return fmt.Errorf("messenger: %w", err)
			}
		}
		ids = ids[1:]
	}
	return m.store.Put(lastResortKey, []byte(strings.Join(ids, ",")))
}
