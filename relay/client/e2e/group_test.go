package e2e_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	grecord "go.mau.fi/libsignal/groups/state/record"
	"go.mau.fi/libsignal/protocol"
	"go.mau.fi/libsignal/serialize"

	"github.com/pigeonhole/pigeonhole/relay/client"
	"github.com/pigeonhole/pigeonhole/relay/client/e2e"
)

// member is a group member's device: device 1 of account id.
type member struct {
	dev  *e2e.Device
	acct []byte
}

func newMember(tb testing.TB, id byte) *member {
	tb.Helper()
	dev, _ := createDevice(tb, 0)
	acct := bytes.Repeat([]byte{id}, 16)
	if err := dev.Registered(acct, 1); err != nil {
		tb.Fatal(err)
	}
	return &member{dev: dev, acct: acct}
}

func newGroupID(tb testing.TB) []byte {
	tb.Helper()
	gid, _, err := e2e.NewGroupID(bytes.Repeat([]byte{0xad}, 16))
	if err != nil {
		tb.Fatal(err)
	}
	if len(gid) != e2e.GroupIDSize {
		tb.Fatalf("group id is %d bytes", len(gid))
	}
	return gid
}

// distribute sends from's sender key to each of to, as the pairwise
// sessions would.
func distribute(tb testing.TB, gid []byte, from *member, to ...*member) {
	tb.Helper()
	ctx := context.Background()
	skd, err := from.dev.SenderKeyDistribution(ctx, gid)
	if err != nil {
		tb.Fatal(err)
	}
	for _, m := range to {
		if err := m.dev.ProcessSenderKeyDistribution(ctx, gid, from.acct, 1, skd); err != nil {
			tb.Fatal(err)
		}
	}
}

func groupEncrypt(tb testing.TB, gid []byte, from *member, msg string) []byte {
	tb.Helper()
	ct, err := from.dev.GroupEncrypt(context.Background(), gid, []byte(msg))
	if err != nil {
		tb.Fatal(err)
	}
	if len(msg) >= 8 && bytes.Contains(ct, []byte(msg)) {
		tb.Fatal("group ciphertext contains the plaintext")
	}
	return ct
}

func mustGroupDecrypt(t *testing.T, gid []byte, at, from *member, ct []byte, want string) {
	t.Helper()
	got, err := at.dev.GroupDecrypt(context.Background(), gid, from.acct, 1, ct)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestGroup(t *testing.T) {
	ctx := context.Background()
	a, b, c := newMember(t, 0xa), newMember(t, 0xb), newMember(t, 0xc)
	gid := newGroupID(t)

	distribute(t, gid, a, b, c)
	ct := groupEncrypt(t, gid, a, "hello group")
	if len(ct) < e2e.PaddingBlock {
		t.Fatalf("group ciphertext of %d bytes is not padded", len(ct))
	}
	mustGroupDecrypt(t, gid, b, a, ct, "hello group")
	mustGroupDecrypt(t, gid, c, a, ct, "hello group")

	// Replay.
	if _, err := b.dev.GroupDecrypt(ctx, gid, a.acct, 1, ct); !errors.Is(err, e2e.ErrDuplicate) {
		t.Fatalf("replay: %v, want ErrDuplicate", err)
	}

	// B replies. Its distribution (sent pairwise) may arrive after the
	// group message: A cannot decrypt until it processes it.
	if _, err := b.dev.GroupEncrypt(ctx, gid, []byte("x")); !errors.Is(err, e2e.ErrNoSenderKey) {
		t.Fatalf("encrypt without a sender key: %v, want ErrNoSenderKey", err)
	}
	skd, err := b.dev.SenderKeyDistribution(ctx, gid)
	if err != nil {
		t.Fatal(err)
	}
	reply := groupEncrypt(t, gid, b, "hi all")
	if _, err := a.dev.GroupDecrypt(ctx, gid, b.acct, 1, reply); !errors.Is(err, e2e.ErrNoSenderKey) {
		t.Fatalf("before distribution: %v, want ErrNoSenderKey", err)
	}
	for _, m := range []*member{a, c} {
		if err := m.dev.ProcessSenderKeyDistribution(ctx, gid, b.acct, 1, skd); err != nil {
			t.Fatal(err)
		}
		mustGroupDecrypt(t, gid, m, b, reply, "hi all")
	}

	// Out of order: A's third message before its second.
	ct2, ct3 := groupEncrypt(t, gid, a, "two"), groupEncrypt(t, gid, a, "three")
	mustGroupDecrypt(t, gid, b, a, ct3, "three")
	mustGroupDecrypt(t, gid, b, a, ct2, "two")

	// Unknown sender, and a sender in another group.
	d := newMember(t, 0xd)
	if _, err := b.dev.GroupDecrypt(ctx, gid, d.acct, 1, ct); !errors.Is(err, e2e.ErrNoSenderKey) {
		t.Fatalf("unknown sender: %v, want ErrNoSenderKey", err)
	}
	if _, err := b.dev.GroupDecrypt(ctx, newGroupID(t), a.acct, 1, ct); !errors.Is(err, e2e.ErrNoSenderKey) {
		t.Fatalf("other group: %v, want ErrNoSenderKey", err)
	}
	// A message claimed to be from C but made with A's key.
	distribute(t, gid, c, b)
	if _, err := b.dev.GroupDecrypt(ctx, gid, c.acct, 1, ct2); err == nil {
		t.Fatal("a message signed by A decrypted as C's")
	}
}

func TestGroupRotate(t *testing.T) {
	ctx := context.Background()
	a, b, c := newMember(t, 0xa), newMember(t, 0xb), newMember(t, 0xc)
	gid := newGroupID(t)
	distribute(t, gid, a, b, c)
	mustGroupDecrypt(t, gid, c, a, groupEncrypt(t, gid, a, "before"), "before")

	// C is removed: A rotates and distributes to B only.
	if err := a.dev.RotateSenderKey(ctx, gid); err != nil {
		t.Fatal(err)
	}
	if _, err := a.dev.GroupEncrypt(ctx, gid, []byte("x")); !errors.Is(err, e2e.ErrNoSenderKey) {
		t.Fatalf("encrypt after rotation: %v, want ErrNoSenderKey", err)
	}
	distribute(t, gid, a, b)
	ct := groupEncrypt(t, gid, a, "after")
	mustGroupDecrypt(t, gid, b, a, ct, "after")
	if got, err := c.dev.GroupDecrypt(ctx, gid, a.acct, 1, ct); err == nil {
		t.Fatalf("removed member decrypted %q", got)
	} else if !errors.Is(err, e2e.ErrNoSenderKey) {
		t.Fatalf("removed member: %v, want ErrNoSenderKey", err)
	}
}

func TestGroupStaleDistribution(t *testing.T) {
	ctx := context.Background()
	a, b := newMember(t, 0xa), newMember(t, 0xb)
	gid := newGroupID(t)
	skd, err := a.dev.SenderKeyDistribution(ctx, gid)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.dev.ProcessSenderKeyDistribution(ctx, gid, a.acct, 1, skd); err != nil {
		t.Fatal(err)
	}
	ct := groupEncrypt(t, gid, a, "once")
	mustGroupDecrypt(t, gid, b, a, ct, "once")
	// The same distribution again (redelivered, or resent to a new
	// member) must not rewind A's key at B.
	if err := b.dev.ProcessSenderKeyDistribution(ctx, gid, a.acct, 1, skd); err != nil {
		t.Fatal(err)
	}
	if _, err := b.dev.GroupDecrypt(ctx, gid, a.acct, 1, ct); !errors.Is(err, e2e.ErrDuplicate) {
		t.Fatalf("replay after a stale distribution: %v, want ErrDuplicate", err)
	}
}

func TestGroupBadInput(t *testing.T) {
	ctx := context.Background()
	a, b := newMember(t, 0xa), newMember(t, 0xb)
	gid := newGroupID(t)
	distribute(t, gid, a, b)
	ct := groupEncrypt(t, gid, a, "hello")
	skd, err := a.dev.SenderKeyDistribution(ctx, gid)
	if err != nil {
		t.Fatal(err)
	}

	if _, err := b.dev.GroupDecrypt(ctx, gid[:15], a.acct, 1, ct); err == nil {
		t.Fatal("short group id accepted")
	}
	if _, err := b.dev.GroupDecrypt(ctx, gid, a.acct[:3], 1, ct); err == nil {
		t.Fatal("short account id accepted")
	}
	if err := a.dev.ProcessSenderKeyDistribution(ctx, gid, a.acct, 1, skd); err == nil {
		t.Fatal("a device accepted its own distribution")
	}
	flipped := bytes.Clone(ct)
	flipped[len(flipped)/2] ^= 1
	if _, err := b.dev.GroupDecrypt(ctx, gid, a.acct, 1, flipped); err == nil {
		t.Fatal("altered group message decrypted")
	}
	for _, in := range garbage(ct, skd) {
		if _, err := b.dev.GroupDecrypt(ctx, gid, a.acct, 1, in); err == nil && !bytes.Equal(in, ct) {
			t.Errorf("GroupDecrypt(%x) succeeded", in)
		}
		if err := b.dev.ProcessSenderKeyDistribution(ctx, gid, bytes.Repeat([]byte{0xee}, 16), 1, in); err == nil && !bytes.Equal(in, skd) {
			t.Errorf("ProcessSenderKeyDistribution(%x) succeeded", in)
		}
	}
	// The real message still decrypts after all that.
	mustGroupDecrypt(t, gid, b, a, ct, "hello")
}

// garbage is inputs that have crashed (or would crash) libsignal's group
// code: empty and short messages, truncations, empty fields.
func garbage(ct, skd []byte) [][]byte {
	// A distribution: version byte, then protobuf fields id (1),
	// iteration (2), chain key (3), signing key (4).
	chain := append([]byte{0x1a, 0x20}, make([]byte, 32)...)
	dist := func(signing ...byte) []byte {
		b := append([]byte{0x33, 0x08, 0x01, 0x10, 0x00}, chain...)
		return append(append(b, 0x22, byte(len(signing))), signing...)
	}
	out := [][]byte{nil, {}, {0x33}, {0x30}, {0xff}, bytes.Repeat([]byte{0x33}, 64), bytes.Repeat([]byte{0x33}, 65),
		dist(), dist(0x05), dist(0x06, 1, 2), {0x33, 0x1a, 0x00, 0x22, 0x00},
	}
	for i := 0; i < len(ct); i += 7 {
		out = append(out, ct[:i])
	}
	for i := 0; i < len(skd); i++ {
		out = append(out, skd[:i])
	}
	return out
}

// TestGroupCiphertextNotWholeBlocks sends B a group message correctly
// signed with A's sender key whose AES-CBC ciphertext is not whole
// blocks, which makes libsignal's cipher panic if it gets that far.
func TestGroupCiphertextNotWholeBlocks(t *testing.T) {
	ctx := context.Background()
	a, b := newMember(t, 0xa), newMember(t, 0xb)
	gid := newGroupID(t)
	distribute(t, gid, a, b)

	raw := stored(t, a.dev, "groups/"+hex.EncodeToString(gid)+"/"+hex.EncodeToString(a.acct)+".1")
	ser := serialize.NewProtoBufSerializer()
	rec, err := grecord.NewSenderKeyFromBytes(raw, ser.SenderKeyRecord, ser.SenderKeyState)
	if err != nil {
		t.Fatal(err)
	}
	st, err := rec.SenderKeyState()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{0, 1, 15, 17, 33} {
		m := protocol.NewSenderKeyMessage(st.KeyID(), st.SenderChainKey().Iteration(), make([]byte, n),
			st.SigningKey().PrivateKey(), ser.SenderKeyMessage)
		if _, err := b.dev.GroupDecrypt(ctx, gid, a.acct, 1, m.SignedSerialize()); err == nil {
			t.Errorf("%d-byte ciphertext decrypted", n)
		}
	}
	mustGroupDecrypt(t, gid, b, a, groupEncrypt(t, gid, a, "fine"), "fine")
}

func TestGroupFiles(t *testing.T) {
	onlyOnDirectory(t)
	a, b := newMember(t, 0xa), newMember(t, 0xb)
	gid := newGroupID(t)
	distribute(t, gid, a, b)
	for _, m := range []*member{a, b} {
		dir := filepath.Join(m.dev.Dir(), "groups", hex.EncodeToString(gid))
		name := filepath.Join(dir, hex.EncodeToString(a.acct)+".1")
		fi, err := os.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", name, fi.Mode().Perm())
		}
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(ents) != 1 {
			t.Errorf("%s: %d files, want 1 (no temporary files left)", dir, len(ents))
		}
		if err := filepath.WalkDir(filepath.Join(m.dev.Dir(), "groups"), func(p string, e fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if e.IsDir() {
				if fi, err := e.Info(); err != nil || fi.Mode().Perm() != 0o700 {
					t.Errorf("%s: not a 0700 directory (%v)", p, err)
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
}

// FuzzGroupDecrypt feeds arbitrary bytes to GroupDecrypt (from a sender
// whose key is known) and to ProcessSenderKeyDistribution: errors are
// fine, panics are not.
func FuzzGroupDecrypt(f *testing.F) {
	ctx := context.Background()
	a, b := newMember(f, 0xa), newMember(f, 0xb)
	gid := newGroupID(f)
	distribute(f, gid, a, b)
	ct := groupEncrypt(f, gid, a, "seed")
	skd, err := a.dev.SenderKeyDistribution(ctx, gid)
	if err != nil {
		f.Fatal(err)
	}
	for _, in := range garbage(ct, skd) {
		f.Add(in)
	}
	f.Add(ct)
	f.Add(skd)
	stranger := bytes.Repeat([]byte{0xee}, 16)
	f.Fuzz(func(t *testing.T, in []byte) {
		if got, err := b.dev.GroupDecrypt(ctx, gid, a.acct, 1, in); err == nil && string(got) != "seed" {
			t.Fatalf("GroupDecrypt(%x) = %q", in, got)
		}
		_ = b.dev.ProcessSenderKeyDistribution(ctx, gid, stranger, 1, in)
		env := &client.Envelope{Sender: a.acct, SenderDevice: 1, Type: e2e.TypeGroup, Content: e2e.GroupContent(gid, in)}
		if g, got, err := b.dev.DecryptGroup(ctx, env); err == nil && (string(got) != "seed" || !bytes.Equal(g, gid)) {
			t.Fatalf("DecryptGroup(%x) = %x, %q", in, g, got)
		}
		env.Content = in
		_, _, _ = b.dev.DecryptGroup(ctx, env)
	})
}

// TestDecryptGroup checks the wire form of a group message: the group id,
// then the sender-key message, decrypted for the device the relay names.
func TestDecryptGroup(t *testing.T) {
	ctx := context.Background()
	a, b, c := newMember(t, 0xa), newMember(t, 0xb), newMember(t, 0xc)
	gid, other := newGroupID(t), newGroupID(t)
	distribute(t, gid, a, b)
	ct := groupEncrypt(t, gid, a, "on the wire")
	content := e2e.GroupContent(gid, ct)
	if !bytes.Equal(content[:e2e.GroupIDSize], gid) || !bytes.Equal(content[e2e.GroupIDSize:], ct) {
		t.Fatal("GroupContent is not the group id followed by the ciphertext")
	}
	env := &client.Envelope{Sender: a.acct, SenderDevice: 1, Type: e2e.TypeGroup, Content: content}
	g, plain, err := b.dev.DecryptGroup(ctx, env)
	if err != nil || !bytes.Equal(g, gid) || string(plain) != "on the wire" {
		t.Fatalf("DecryptGroup = %x, %q, %v", g, plain, err)
	}
	if _, _, err := b.dev.DecryptGroup(ctx, env); !errors.Is(err, e2e.ErrDuplicate) {
		t.Fatalf("again: %v, want ErrDuplicate", err)
	}
	// A device that never got the key, a claimed sender that is not the
	// one whose key signed it, and another group's id all fail.
	if _, _, err := c.dev.DecryptGroup(ctx, env); !errors.Is(err, e2e.ErrNoSenderKey) {
		t.Fatalf("without the key: %v, want ErrNoSenderKey", err)
	}
	distribute(t, gid, c, b)
	forged := &client.Envelope{Sender: c.acct, SenderDevice: 1, Type: e2e.TypeGroup, Content: e2e.GroupContent(gid, groupEncrypt(t, gid, a, "forged"))}
	if _, _, err := b.dev.DecryptGroup(ctx, forged); err == nil {
		t.Fatal("a message signed by a decrypted as from c")
	}
	moved := &client.Envelope{Sender: a.acct, SenderDevice: 1, Type: e2e.TypeGroup, Content: e2e.GroupContent(other, groupEncrypt(t, gid, a, "moved"))}
	if _, _, err := b.dev.DecryptGroup(ctx, moved); !errors.Is(err, e2e.ErrNoSenderKey) {
		t.Fatalf("under another group id: %v, want ErrNoSenderKey", err)
	}
	for _, bad := range []*client.Envelope{
		{Sender: a.acct, SenderDevice: 1, Type: e2e.TypeSignal, Content: content},
		{Sender: a.acct, SenderDevice: 1, Type: e2e.TypeGroup, Content: gid},
		{Sender: a.acct[:3], SenderDevice: 1, Type: e2e.TypeGroup, Content: content},
	} {
		if _, _, err := b.dev.DecryptGroup(ctx, bad); err == nil {
			t.Fatalf("DecryptGroup accepted %+v", bad)
		}
	}
}

// TestForgetSenderKeys checks that a removed member's keys, and a left
// group's keys, are gone: nothing under them decrypts any more.
func TestForgetSenderKeys(t *testing.T) {
	ctx := context.Background()
	a, b, c := newMember(t, 0xa), newMember(t, 0xb), newMember(t, 0xc)
	gid := newGroupID(t)
	distribute(t, gid, a, b)
	distribute(t, gid, c, b)
	if err := b.dev.ForgetSenderKeys(gid, c.acct); err != nil {
		t.Fatal(err)
	}
	if _, err := b.dev.GroupDecrypt(ctx, gid, c.acct, 1, groupEncrypt(t, gid, c, "after removal")); !errors.Is(err, e2e.ErrNoSenderKey) {
		t.Fatalf("a forgotten member's message: %v, want ErrNoSenderKey", err)
	}
	mustGroupDecrypt(t, gid, b, a, groupEncrypt(t, gid, a, "still here"), "still here")
	if err := b.dev.ForgetSenderKeys(gid, c.acct[:4]); err == nil {
		t.Fatal("ForgetSenderKeys took a short account id")
	}

	if err := b.dev.LeaveGroup(gid); err != nil {
		t.Fatal(err)
	}
	if _, err := b.dev.GroupDecrypt(ctx, gid, a.acct, 1, groupEncrypt(t, gid, a, "after leaving")); !errors.Is(err, e2e.ErrNoSenderKey) {
		t.Fatalf("after leaving: %v, want ErrNoSenderKey", err)
	}
	if err := b.dev.LeaveGroup(gid); err != nil {
		t.Fatalf("leaving twice: %v", err)
	}
}

// TestGroupIDBinding checks that a group id belongs to one admin: the
// salt that proves it for the admin proves nothing for anyone else.
func TestGroupIDBinding(t *testing.T) {
	alice, mallory := bytes.Repeat([]byte{0xa}, 16), bytes.Repeat([]byte{0xee}, 16)
	id, salt, err := e2e.NewGroupID(alice)
	if err != nil {
		t.Fatal(err)
	}
	id2, salt2, err := e2e.NewGroupID(alice)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(id, id2) || bytes.Equal(salt, salt2) || len(salt) != e2e.GroupSaltSize {
		t.Fatal("two groups of one admin share an id or a salt")
	}
	if !e2e.GroupIDMatches(id, alice, salt) {
		t.Fatal("the admin's own group id does not match")
	}
	for _, c := range []struct {
		name            string
		id, admin, salt []byte
	}{
		{"another admin", id, mallory, salt},
		{"another salt", id, alice, salt2},
		{"short salt", id, alice, salt[:8]},
		{"short id", id[:8], alice, salt},
		{"short admin", id, alice[:8], salt},
	} {
		if e2e.GroupIDMatches(c.id, c.admin, c.salt) {
			t.Errorf("%s: matches", c.name)
		}
	}
	if _, _, err := e2e.NewGroupID(alice[:3]); err == nil {
		t.Error("NewGroupID took a short account id")
	}
}
