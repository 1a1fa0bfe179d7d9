package relay_test

// Tests that pin sentences of spec/protocol.md against a real relay.

import (
	"bytes"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/pigeonhole/pigeonhole/relay"
	"github.com/pigeonhole/pigeonhole/relay/client"
	"github.com/pigeonhole/pigeonhole/relay/relaytest"
	"github.com/pigeonhole/pigeonhole/spec"
)

// specAuthLists returns the two request lists of protocol.md's "Requests
// that need authentication" paragraph: the bullet starting "Needs
// authentication" and the one starting "Needs none".
func specAuthLists(t *testing.T) (needs, none []string) {
	t.Helper()
	raw, err := os.ReadFile("../spec/protocol.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	start := strings.Index(doc, "**Requests that need authentication.**")
	if start < 0 {
		t.Fatal("protocol.md has no \"Requests that need authentication\" paragraph")
	}
	// The paragraph and its list end at the next blank line after the list.
	para := doc[start:]
	if end := strings.Index(para, "\n\nSee "); end >= 0 {
		para = para[:end]
	}
	names := regexp.MustCompile("`([a-z_]+)`")
	bullet := func(prefix string) []string {
		i := strings.Index(para, "\n- "+prefix)
		if i < 0 {
			t.Fatalf("no bullet %q in the paragraph:\n%s", prefix, para)
		}
		b := para[i+3:]
		if j := strings.Index(b, "\n- "); j >= 0 {
			b = b[:j]
		}
		var out []string
		for _, m := range names.FindAllStringSubmatch(b, -1) {
			out = append(out, m[1])
		}
		return out
	}
	return bullet("Needs authentication"), bullet("Needs none")
}

// TestSpecAuthList checks protocol.md's two lists against the proto (every
// Request.body variant named exactly once) and against a real relay: every
// request listed as needing authentication, sent empty as the first stream
// of a fresh connection, is refused with UNAUTHENTICATED, and every other
// one is not.
func TestSpecAuthList(t *testing.T) {
	needs, none := specAuthLists(t)
	oneof := (&spec.Request{}).ProtoReflect().Descriptor().Oneofs().ByName("body")
	if oneof == nil {
		t.Fatal("Request has no oneof body")
	}
	fields := map[string]protoreflect.FieldDescriptor{}
	for i := 0; i < oneof.Fields().Len(); i++ {
		fd := oneof.Fields().Get(i)
		fields[string(fd.Name())] = fd
	}
	listed := map[string]int{}
	for _, n := range append(slices.Clone(needs), none...) {
		listed[n]++
	}
	for n, k := range listed {
		if _, ok := fields[n]; !ok {
			t.Errorf("protocol.md lists %q, which is not a Request.body variant", n)
		}
		if k != 1 {
			t.Errorf("protocol.md lists %q %d times", n, k)
		}
	}
	for n := range fields {
		if listed[n] == 0 {
			t.Errorf("protocol.md's authentication lists omit %q", n)
		}
	}
	// The counts in the bullets' headings match the lists.
	raw, _ := os.ReadFile("../spec/protocol.md")
	if !strings.Contains(string(raw), "Needs authentication ("+strconv.Itoa(len(needs))+")") ||
		!strings.Contains(string(raw), "Needs none ("+strconv.Itoa(len(none))+")") {
		t.Errorf("the bullet headings' counts do not match the lists (%d, %d)", len(needs), len(none))
	}

	r := startRelay(t, testConfig())
	for name, fd := range fields {
		if name == "open_session" {
			continue // it is the authentication; TestAuthErrors covers it
		}
		t.Run(name, func(t *testing.T) {
			req := (&spec.Request{}).ProtoReflect()
			req.Set(fd, req.NewField(fd))
			qc, _ := r.rawConn(t)
			st, err := qc.OpenStreamSync(ctxT(t))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := st.Write(frame(t, req.Interface())); err != nil {
				t.Fatal(err)
			}
			st.Close()
			payload, err := spec.ReadFrameBytes(st, 0)
			if err != nil {
				t.Fatalf("read answer: %v", err)
			}
			var code spec.Code
			if name == "open_provisioning" {
				var ev spec.ProvisioningEvent
				if err := proto.Unmarshal(payload, &ev); err != nil {
					t.Fatal(err)
				}
				if ev.GetAddress() == nil {
					code = spec.Code(ev.GetError().GetCode())
				}
			} else {
				var resp spec.Response
				if err := proto.Unmarshal(payload, &resp); err != nil {
					t.Fatal(err)
				}
				code = spec.Code(resp.GetError().GetCode())
			}
			got := code == spec.CodeUnauthenticated
			want := slices.Contains(needs, name)
			if got != want {
				t.Errorf("unauthenticated %s answered %s; protocol.md says it needs authentication: %v", name, code, want)
			}
		})
	}
}

// TestLinkSharesRegisterBucket: link_device takes its token from the same
// per-address bucket as register, and an over-long encrypted name is
// refused before the bucket, taking no token.
func TestLinkSharesRegisterBucket(t *testing.T) {
	cfg := testConfig()
	cfg.RegisterLimit = relay.Limit{Burst: 2, Every: time.Hour}
	r := startRelay(t, cfg)
	alice := r.register(t, 1) // token 1 of 2
	a1 := r.session(t, alice, 0)
	code, _, err := a1.CreateLinkCode(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	reg, err := relaytest.NewLinkedRegistration(alice.identity, 1)
	if err != nil {
		t.Fatal(err)
	}
	nc := r.dial(t)
	_, err = nc.LinkDevice(ctxT(t), alice.AccountID, code, reg, bytes.Repeat([]byte{7}, 257))
	wantCode(t, err, spec.CodeBadRequest)
	// 256 bytes is allowed, and this takes token 2.
	if _, err := nc.LinkDevice(ctxT(t), alice.AccountID, code, reg, bytes.Repeat([]byte{7}, 256)); err != nil {
		t.Fatalf("link with a 256-byte name: %v", err)
	}
	// The bucket is empty for register too.
	next, _ := newRegistration(t, 0)
	_, err = r.dial(t).Register(ctxT(t), next)
	if e := wantCode(t, err, spec.CodeRateLimited); e.RetryAfterMillis == 0 {
		t.Errorf("retry_after_ms = %d", e.RetryAfterMillis)
	}
}

// TestClientMessageIDIgnoresRecipient pins the idempotency rule of
// protocol.md (Send): the key is (sender account, sender device,
// client_message_id) without the recipient, so the same id sent to a
// second recipient is a duplicate and stores nothing.
func TestClientMessageIDIgnoresRecipient(t *testing.T) {
	r := startRelay(t, testConfig())
	alice, bob, carol := r.register(t, 0), r.register(t, 0), r.register(t, 0)
	ac := r.session(t, alice, 0)
	id := randomID(t)
	msg := func(to *device) *client.Message {
		return &client.Message{Recipient: to.AccountID, ClientMessageID: id,
			Devices: []client.DeviceMessage{{DeviceID: 1, Type: 2, Content: []byte("hi")}}}
	}
	first, err := ac.Send(ctxT(t), msg(bob))
	if err != nil || first.Duplicate {
		t.Fatalf("first send: %+v, %v", first, err)
	}
	second, err := ac.Send(ctxT(t), msg(carol))
	if err != nil {
		t.Fatal(err)
	}
	if !second.Duplicate || second.TimestampMillis != first.TimestampMillis {
		t.Fatalf("same id to another recipient = %+v, want duplicate of %+v", second, first)
	}
	// Carol's queue is empty: her session drains at once.
	cc := r.session(t, carol, 16)
	nextKind(t, cc, client.EventDrained)
	// Bob got it once.
	bc := r.session(t, bob, 16)
	nextEnvelope(t, bc)
	nextKind(t, bc, client.EventDrained)
}

// specAPNsHeaders returns the header names of protocol.md's APNs request
// table (the rows of the table after "### The APNs request").
func specAPNsHeaders(t *testing.T) []string {
	t.Helper()
	raw, err := os.ReadFile("../spec/protocol.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	i := strings.Index(doc, "### The APNs request")
	if i < 0 {
		t.Fatal("protocol.md has no APNs request section")
	}
	sec := doc[i:]
	if j := strings.Index(sec, "\n### The FCM request"); j >= 0 {
		sec = sec[:j]
	}
	row := regexp.MustCompile("(?m)^\\| `([a-z-]+)` \\|")
	var out []string
	for _, m := range row.FindAllStringSubmatch(sec, -1) {
		out = append(out, m[1])
	}
	if len(out) == 0 {
		t.Fatal("no header rows in the APNs request section")
	}
	return out
}

// TestSpecAPNsHeaders checks that an APNs push carries exactly the headers
// protocol.md's table names (HTTP/2 pseudo-headers aside).
func TestSpecAPNsHeaders(t *testing.T) {
	want := specAPNsHeaders(t)
	slices.Sort(want)
	r, a := startPushRelay(t, time.Minute)
	alice, bob := r.register(t, 0), r.register(t, 0)
	tok := r.pushToken(t, bob)
	ac := r.session(t, alice, 0)
	if _, err := sendText(t, ac, bob, []uint32{1}, "wake"); err != nil {
		t.Fatal(err)
	}
	req := a.Next(t, 20*time.Second)
	if req.Token != tok {
		t.Fatalf("push to %q, want bob's token", req.Token)
	}
	var got []string
	for name := range req.Header {
		got = append(got, strings.ToLower(name))
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("APNs request headers %q, protocol.md names %q", got, want)
	}
	// The three the HTTP/2 client adds, with the values the table gives.
	for name, v := range map[string]string{
		"accept-encoding": "gzip",
		"user-agent":      "Go-http-client/2.0",
		"content-length":  strconv.Itoa(len(req.Body)),
	} {
		if got := req.Header.Get(name); got != v {
			t.Errorf("%s: %q, want %q", name, got, v)
		}
	}
}

// TestSendCheckOrder pins the order of protocol.md's Send table: sizes and
// emptiness per device message, in the order given, before duplicates,
// and all of them before the recipient is looked up.
func TestSendCheckOrder(t *testing.T) {
	cfg := testConfig()
	cfg.MaxEnvelopeBytes = 16
	r := startRelay(t, cfg)
	alice := r.register(t, 0)
	ac := r.session(t, alice, 0)
	big, ok := bytes.Repeat([]byte{1}, 17), []byte("ok")
	send := func(to []byte, ms ...client.DeviceMessage) error {
		_, err := ac.Send(ctxT(t), &client.Message{Recipient: to, ClientMessageID: randomID(t), Devices: ms})
		return err
	}
	nobody := randomID(t) // no such account: checked only after the messages
	for _, c := range []struct {
		name string
		ms   []client.DeviceMessage
		want spec.Code
	}{
		{"oversized after a duplicate", []client.DeviceMessage{{DeviceID: 1, Content: ok}, {DeviceID: 1, Content: ok}, {DeviceID: 2, Content: big}}, spec.CodeEnvelopeTooLarge},
		{"empty after a duplicate", []client.DeviceMessage{{DeviceID: 1, Content: ok}, {DeviceID: 1, Content: ok}, {DeviceID: 2}}, spec.CodeBadRequest},
		{"empty before oversized", []client.DeviceMessage{{DeviceID: 1}, {DeviceID: 2, Content: big}}, spec.CodeBadRequest},
		{"oversized before empty", []client.DeviceMessage{{DeviceID: 1, Content: big}, {DeviceID: 2}}, spec.CodeEnvelopeTooLarge},
		{"duplicate", []client.DeviceMessage{{DeviceID: 1, Content: ok}, {DeviceID: 1, Content: ok}}, spec.CodeDuplicateDevice},
		{"none", nil, spec.CodeBadRequest},
	} {
		t.Run(c.name, func(t *testing.T) { wantCode(t, send(nobody, c.ms...), c.want) })
	}
	wantCode(t, send(nobody, client.DeviceMessage{DeviceID: 1, Content: ok}), spec.CodeUnknownAccount)
}

// TestRegisterName: register takes the first device's sealed name (at
// most 256 bytes, refused before the rate limit), and list_devices
// returns it.
func TestRegisterName(t *testing.T) {
	cfg := testConfig()
	cfg.RegisterLimit = relay.Limit{Burst: 1, Every: time.Hour}
	r := startRelay(t, cfg)
	reg, ik := newRegistration(t, 0)
	reg.EncryptedName = bytes.Repeat([]byte{7}, 257)
	_, err := r.dial(t).Register(ctxT(t), reg)
	wantCode(t, err, spec.CodeBadRequest)
	// The refusal took no token: the one token is still there.
	reg.EncryptedName = bytes.Repeat([]byte{9}, 256)
	acct, err := r.dial(t).Register(ctxT(t), reg)
	if err != nil {
		t.Fatalf("register with a 256-byte name: %v", err)
	}
	d := &device{Account: *acct, auth: reg.AuthKey, identity: ik}
	devs, err := r.session(t, d, 0).ListDevices(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(devs) != 1 || !bytes.Equal(devs[0].EncryptedName, reg.EncryptedName) {
		t.Fatalf("devices %+v, want device 1 with the registered name", devs)
	}
}
