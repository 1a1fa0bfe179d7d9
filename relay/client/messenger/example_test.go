package messenger_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/pigeonhole/pigeonhole/relay/client/messenger"
)

// printer is the app's Handler: it prints each message and stops.
type printer struct{ got chan struct{} }

func (p printer) OnMessage(m *messenger.Message) error {
	fmt.Println("bob got:", m.Text)
	close(p.got)
	return nil // returning nil acks the envelope
}
func (printer) OnReceipt(*messenger.Receipt) error      { return nil }
func (printer) OnTyping(*messenger.Typing) error        { return nil }
func (printer) OnGroup(*messenger.GroupChange) error    { return nil }
func (printer) OnDevices(*messenger.DeviceChange) error { return nil }
func (printer) OnDelete(*messenger.Delete) error        { return nil }
func (printer) OnDropped(*messenger.Dropped)            {}
func (printer) OnDrained()                              {}
func (printer) OnConnection(bool, string, int64)        {}

// Two devices exchange a message through a real relay on 127.0.0.1.
func Example() {
	cfg, stop := messenger.NewExampleRelay() // an app uses its relay's address and fingerprint
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir, _ := os.MkdirTemp("", "example-")
	defer os.RemoveAll(dir)

	alice, err := messenger.Register(ctx, filepath.Join(dir, "alice"), cfg, "laptop")
	if err != nil {
		panic(err)
	}
	defer alice.Close()
	bob, err := messenger.Register(ctx, filepath.Join(dir, "bob"), cfg, "phone")
	if err != nil {
		panic(err)
	}
	defer bob.Close()

	if _, err := alice.Send(ctx, bob.AccountID(), &messenger.Content{Text: "hello, bob"}); err != nil {
		panic(err)
	}
	p := printer{got: make(chan struct{})}
	go bob.Run(ctx, p)
	<-p.got
	// Output: bob got: hello, bob
}
