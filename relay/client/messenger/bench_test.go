package messenger

import (
	"context"
	"testing"
)

// BenchmarkSend is one end-to-end text to a contact with a session:
// encrypt, one durable send on the relay, no own devices (run it with
// -benchtime=200x; it is not a timed assertion).
func BenchmarkSend(b *testing.B) {
	r, err := startTestRelay(b.TempDir(), "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer r.stop()
	ctx := context.Background()
	alice, err := Register(ctx, b.TempDir()+"/a", &r.cfg, "")
	if err != nil {
		b.Fatal(err)
	}
	defer alice.Close()
	bob, err := Register(ctx, b.TempDir()+"/b", &r.cfg, "")
	if err != nil {
		b.Fatal(err)
	}
	defer bob.Close()
	if _, err := alice.Send(ctx, bob.AccountID(), &Content{Text: "warm up"}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		if _, err := alice.Send(ctx, bob.AccountID(), &Content{Text: "a message of some forty bytes or so...."}); err != nil {
			b.Fatal(err)
		}
	}
}
