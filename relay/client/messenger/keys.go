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

// rotationKey is the record holding when the signed prekey was last
// replaced (Unix milliseconds, decimal).
const rotationKey = "keys/signed-rotated"

// keyCheckEvery is how often Run looks at the signed prekey's age.
const keyCheckEvery = time.Hour

// maxUpload is the most one-time prekeys one upload may carry.
const maxUpload = 100

// noteRotation records that the signed prekey was replaced at now.
func noteRotation(r Records, now time.Time) error {
	return r.Put(rotationKey, []byte(strconv.FormatInt(now.UnixMilli(), 10)))
}

// refill uploads new one-time X25519 prekeys when the relay says fewer
// than the configured number are left.
func (m *Messenger) refill(ctx context.Context, remaining int) {
	m.topUp(ctx, "prekeys", remaining, func(n int) (func(*client.Conn) error, error) {
		pks, err := m.store.NewPreKeys(n)
		return func(c *client.Conn) error { _, err := c.UploadPreKeys(ctx, pks); return err }, err
	})
}

// refillKEM uploads new one-time KEM prekeys when the relay says fewer
// than the configured number (the same as for X25519 prekeys) are left,
// so that contacts start PQXDH sessions with a one-time KEM prekey rather
// than the last-resort one.
func (m *Messenger) refillKEM(ctx context.Context, remaining int) {
	m.topUp(ctx, "KEM prekeys", remaining, func(n int) (func(*client.Conn) error, error) {
		ks, err := m.store.NewKEMPreKeys(n)
		return func(c *client.Conn) error { _, err := c.UploadKemPreKeys(ctx, e2e.UploadAll(ks)); return err }, err
	})
}

// topUp brings one kind of one-time prekeys on the relay from remaining
// up to the configured number, at most maxUpload per upload: newKeys
// makes and stores n keys and returns their upload, which is repeated
// as it is if the connection drops under it. Nothing happens when that
// kind is not low (the low notice covers both kinds).
func (m *Messenger) topUp(ctx context.Context, kind string, remaining int, newKeys func(n int) (func(*client.Conn) error, error)) {
	want := m.cfg.preKeys() - remaining
	if want <= 0 {
		return
	}
	for left := want; left > 0; {
		n := min(left, maxUpload)
		upload, err := newKeys(n)
		if err != nil {
			m.log.Warn("could not make new one-time "+kind, "err", err)
			return
		}
		if err := m.conn(ctx, upload); err != nil {
			m.log.Warn("could not upload new one-time "+kind, "err", err)
			return
		}
		left -= n
	}
	m.log.Info("uploaded new one-time "+kind, "count", want)
}

// keySchedule rotates the signed prekey when it is due, checking at
// start and then every keyCheckEvery, until ctx ends.
func (m *Messenger) keySchedule(ctx context.Context) {
	t := time.NewTicker(keyCheckEvery)
	defer t.Stop()
	for {
		if err := m.rotateIfDue(ctx, time.Now()); err != nil && ctx.Err() == nil {
			m.log.Warn("signed prekey rotation failed; trying again later", "err", err)
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

// rotateIfDue replaces the signed prekey at the relay when the last
// rotation (unknown: due) is older than the configured interval. It
// reports whether it rotated through RotateSignedPreKey's error only.
func (m *Messenger) rotateIfDue(ctx context.Context, now time.Time) error {
	b, err := m.store.Get(rotationKey)
	if err != nil {
		return err
	}
	if b != nil {
		ms, err := strconv.ParseInt(string(b), 10, 64)
		if err == nil && now.Sub(time.UnixMilli(ms)) < m.cfg.rotation() {
			return nil
		}
	}
	return m.RotateSignedPreKey(ctx)
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
