package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"io"
	"math/big"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
)

// BenchmarkQUICCeiling is the ceiling for Pigeonhole's message path on
// this machine: a bare quic-go relay that does what the relay does per
// message, minus storage, protobuf and auth. A sender opens a stream per
// message (as Pigeonhole's send does), writes 4+256 bytes and reads an
// 8-byte answer; the relay forwards the bytes, framed, on the recipient's
// long-lived stream; the recipient writes an 8-byte ack back. 16 senders
// with 32 sends each in flight, 100 recipients, all over loopback in one
// process. One op is one message sent, delivered and acked; the msgs/s it
// reports is what no relay on this stack and this protocol shape can
// beat here.
func BenchmarkQUICCeiling(b *testing.B) { quicCeiling(b, false) }

// BenchmarkQUICCeilingPipelined is BenchmarkQUICCeiling in protocol 2's
// shape: each sender writes its messages one after another on one
// long-lived stream, at most 32 unanswered, and reads the 8-byte answers
// on the same stream, as Pigeonhole's request streams do.
func BenchmarkQUICCeilingPipelined(b *testing.B) { quicCeiling(b, true) }

// pipelinedSender marks a sender's long-lived stream in the ceiling
// benchmarks; recipientStream marks a recipient's.
const (
	pipelinedSender = 0xfffffffe
	recipientStream = 0xffffffff
)

func quicCeiling(b *testing.B, pipelined bool) {
	const senders, inFlight, recipients, size = 16, 32, 100, 256
	tlsConf := selfSigned(b)
	ln, err := quic.ListenAddr("127.0.0.1:0", tlsConf, &quic.Config{MaxIncomingStreams: 10000})
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// The relay.
	var mu sync.Mutex
	outs := map[uint32]*recipientOut{}
	ready := make(chan struct{}, recipients)
	go func() {
		for {
			conn, err := ln.Accept(ctx)
			if err != nil {
				return
			}
			go serveCeiling(ctx, conn, &mu, outs, ready)
		}
	}()

	clientTLS := &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"ceiling"}}
	dial := func() *quic.Conn {
		c, err := quic.DialAddr(ctx, ln.Addr().String(), clientTLS, &quic.Config{})
		if err != nil {
			b.Fatal(err)
		}
		return c
	}
	var delivered atomic.Int64
	for i := range recipients {
		c := dial()
		defer c.CloseWithError(0, "")
		st, err := c.OpenStreamSync(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := st.Write(binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, recipientStream), uint32(i))); err != nil {
			b.Fatal(err)
		}
		go func() {
			buf := make([]byte, 4+size)
			ack := make([]byte, 8)
			for {
				if _, err := io.ReadFull(st, buf); err != nil {
					return
				}
				if _, err := st.Write(ack); err != nil {
					return
				}
				delivered.Add(1)
			}
		}()
	}
	for range recipients {
		<-ready
	}
	var next atomic.Int64
	want := int64(b.N)
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for range senders {
		c := dial()
		defer c.CloseWithError(0, "")
		if pipelined {
			wg.Go(func() { pipelinedSends(ctx, b, c, &next, want, inFlight, recipients, size) })
			continue
		}
		for range inFlight {
			wg.Go(func() {
				msg := make([]byte, 4+size)
				resp := make([]byte, 8)
				for {
					n := next.Add(1)
					if n > want {
						return
					}
					binary.BigEndian.PutUint32(msg, uint32(n%recipients))
					st, err := c.OpenStreamSync(ctx)
					if err != nil {
						b.Error(err)
						return
					}
					if _, err := st.Write(msg); err != nil {
						b.Error(err)
						return
					}
					st.Close()
					if _, err := io.ReadFull(st, resp); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	for delivered.Load() < want {
		time.Sleep(time.Millisecond)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}

// pipelinedSends sends messages on one stream of c until want are taken,
// with at most inFlight unanswered.
func pipelinedSends(ctx context.Context, b *testing.B, c *quic.Conn, next *atomic.Int64, want int64, inFlight, recipients, size int) {
	st, err := c.OpenStreamSync(ctx)
	if err != nil {
		b.Error(err)
		return
	}
	if _, err := st.Write(binary.BigEndian.AppendUint32(nil, pipelinedSender)); err != nil {
		b.Error(err)
		return
	}
	slots := make(chan struct{}, inFlight)
	answered := make(chan struct{})
	go func() {
		defer close(answered)
		resp := make([]byte, 8)
		for {
			if _, err := io.ReadFull(st, resp); err != nil {
				return
			}
			<-slots
		}
	}()
	msg := make([]byte, 4+4+size)
	for {
		n := next.Add(1)
		if n > want {
			break
		}
		slots <- struct{}{}
		binary.BigEndian.PutUint32(msg, uint32(4+size))
		binary.BigEndian.PutUint32(msg[4:], uint32(n%int64(recipients)))
		if _, err := st.Write(msg); err != nil {
			b.Error(err)
			return
		}
	}
	// Wait for the last answers, then end the stream.
	for range inFlight {
		slots <- struct{}{}
	}
	st.Close()
	st.CancelRead(0)
	<-answered
}

type recipientOut struct {
	mu sync.Mutex
	st *quic.Stream
}

// serveCeiling is the bare relay for one connection: its first stream
// either announces a recipient (then carries envelopes out and acks in)
// or is a send; every later stream is a send.
func serveCeiling(ctx context.Context, conn *quic.Conn, mu *sync.Mutex, outs map[uint32]*recipientOut, ready chan<- struct{}) {
	for {
		st, err := conn.AcceptStream(ctx)
		if err != nil {
			return
		}
		go func() {
			head := make([]byte, 4)
			if _, err := io.ReadFull(st, head); err != nil {
				return
			}
			if binary.BigEndian.Uint32(head) == pipelinedSender {
				servePipelined(st, mu, outs)
				return
			}
			if binary.BigEndian.Uint32(head) == recipientStream {
				// A recipient: envelopes go out on this stream, acks
				// come in.
				if _, err := io.ReadFull(st, head); err != nil {
					return
				}
				mu.Lock()
				outs[binary.BigEndian.Uint32(head)] = &recipientOut{st: st}
				mu.Unlock()
				ready <- struct{}{}
				ack := make([]byte, 8)
				for {
					if _, err := io.ReadFull(st, ack); err != nil {
						return
					}
				}
			}
			body, err := io.ReadAll(st)
			if err != nil {
				return
			}
			mu.Lock()
			out := outs[binary.BigEndian.Uint32(head)]
			mu.Unlock()
			frame := append(append(make([]byte, 0, 4+len(body)), head...), body...)
			out.mu.Lock()
			_, err = out.st.Write(frame)
			out.mu.Unlock()
			if err == nil {
				_, _ = st.Write(make([]byte, 8))
			}
			st.Close()
		}()
	}
}

// servePipelined is the bare relay for one pipelined sender stream:
// frames of a recipient number and a body, each forwarded and answered
// in turn.
func servePipelined(st *quic.Stream, mu *sync.Mutex, outs map[uint32]*recipientOut) {
	head := make([]byte, 4)
	var buf []byte
	ack := make([]byte, 8)
	for {
		if _, err := io.ReadFull(st, head); err != nil {
			return
		}
		n := binary.BigEndian.Uint32(head)
		if n < 4 || n > 1<<20 {
			return
		}
		buf = append(buf[:0], make([]byte, n)...)
		if _, err := io.ReadFull(st, buf); err != nil {
			return
		}
		mu.Lock()
		out := outs[binary.BigEndian.Uint32(buf)]
		mu.Unlock()
		out.mu.Lock()
		_, err := out.st.Write(buf)
		out.mu.Unlock()
		if err != nil {
			return
		}
		if _, err := st.Write(ack); err != nil {
			return
		}
	}
}

func selfSigned(b *testing.B) *tls.Config {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{"localhost"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		b.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, NextProtos: []string{"ceiling"}}
}
