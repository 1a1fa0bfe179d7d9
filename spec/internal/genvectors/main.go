// Command genvectors writes the test vectors in spec/testdata/vectors.
//
// Run from the repository root:
//
//	go run ./spec/internal/genvectors
//
// vectors_test.go recomputes every vector from the same fixed inputs and
// compares byte for byte, so a change here must be matched there.
package main

import (
	"encoding/hex"
	"encoding/json"
	"flag"
	"log"
	"os"
	"path/filepath"
	"strings"

	"github.com/pigeonhole/pigeonhole/spec"
	"google.golang.org/protobuf/proto"
)

func seq(start byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = start + byte(i)
	}
	return b
}

func must(b []byte, err error) []byte {
	if err != nil {
		log.Fatal(err)
	}
	return b
}

func frame(m proto.Message) []byte { return must(spec.AppendFrame(nil, m)) }

func wrap(b []byte) string {
	h := hex.EncodeToString(b)
	var sb strings.Builder
	for len(h) > 64 {
		sb.WriteString(h[:64])
		sb.WriteByte('\n')
		h = h[64:]
	}
	sb.WriteString(h)
	sb.WriteByte('\n')
	return sb.String()
}

func main() {
	dir := flag.String("dir", "spec/testdata/vectors", "output directory")
	flag.Parse()

	exporter := seq(0x00, 32)
	account := seq(0x01, 16)
	msgID := seq(0xa0, 16)
	authKey := seq(0x40, 32)

	kem := loadKem(*dir)
	vectors := map[string][]byte{
		"upload_kem_prekeys": frame(&spec.Request{Id: 5, Body: &spec.Request_UploadKemPrekeys{
			UploadKemPrekeys: &spec.UploadKemPreKeysRequest{KemPrekeys: []*spec.KemPreKey{
				{Id: 1, PublicKey: kem.PublicKey, Signature: kem.Signature}}}}}),
		"fetch_keys_kem": frame(&spec.Response{Id: 6, Body: &spec.Response_FetchKeys{FetchKeys: &spec.FetchKeysResponse{
			AccountId: account,
			Devices: []*spec.DeviceBundle{{
				DeviceId:       1,
				RegistrationId: 7,
				IdentityKey:    kem.IdentityKey,
				SignedPrekey:   &spec.SignedPreKey{Id: 1, PublicKey: kem.SignedPreKey, Signature: kem.SignedPreKeySignature},
				KemPrekey:      &spec.KemPreKey{Id: 1000, PublicKey: kem.PublicKey, Signature: kem.Signature},
				KemLastResort:  true,
			}},
		}}}),
		"ack_ranges": frame(&spec.ClientEvent{Body: &spec.ClientEvent_Ack{Ack: &spec.Ack{
			Seqs: []uint64{300}, Ranges: []*spec.SeqRange{{First: 1, Last: 32}}}}}),
		"prekeys_low": frame(&spec.ServerEvent{Body: &spec.ServerEvent_PrekeysLow{
			PrekeysLow: &spec.PreKeysLow{Remaining: 3, KemRemaining: 9}}}),
		"sealed_send": frame(&spec.Request{Id: 8, Body: &spec.Request_SealedSend{SealedSend: &spec.SealedSendRequest{
			Recipient:       account,
			AccessKey:       seq(0x60, 16),
			ClientMessageId: msgID,
			Messages:        []*spec.DeviceMessage{{DeviceId: 1, Content: []byte("sealed message")}},
		}}}),
		"sealed_envelope": frame(&spec.ServerEvent{Body: &spec.ServerEvent_Envelope{Envelope: &spec.Envelope{
			Seq:             8,
			TimestampMs:     1700000000000,
			Content:         []byte("sealed message"),
			ClientMessageId: msgID,
			Sealed:          true,
		}}}),
		"framed_request": frame(&spec.Request{Body: &spec.Request_Send{Send: &spec.SendRequest{
			Recipient:       account,
			ClientMessageId: msgID,
			Messages: []*spec.DeviceMessage{
				{DeviceId: 1, Type: 3, Content: []byte("ciphertext")},
			},
		}}}),
		"request_stream": append(frame(prekeyStatus(1)), frame(prekeyStatus(300))...),
		"response_id": frame(&spec.Response{Id: 300, Body: &spec.Response_PrekeyStatus{
			PrekeyStatus: &spec.PreKeyStatusResponse{Stored: 7}}}),
		"auth_message":   must(spec.AuthMessage(exporter, account, 1)),
		"register_proof": must(spec.RegisterProof(exporter, authKey)),
		"envelope_frame": frame(&spec.ServerEvent{Body: &spec.ServerEvent_Envelope{Envelope: &spec.Envelope{
			Seq:             7,
			Sender:          account,
			SenderDevice:    2,
			TimestampMs:     1700000000000,
			Type:            3,
			Content:         []byte("ciphertext"),
			ClientMessageId: msgID,
		}}}),
	}
	for name, b := range vectors {
		p := filepath.Join(*dir, name+".hex")
		if err := os.WriteFile(p, []byte(wrap(b)), 0o644); err != nil {
			log.Fatal(err)
		}
	}
}

// kemInputs are the keys the KEM vectors carry, from xeddsa.json and
// kem_prekey.json.
type kemInputs struct {
	IdentityKey, SignedPreKey, SignedPreKeySignature []byte
	PublicKey, Signature                             []byte
}

func loadKem(dir string) kemInputs {
	var x struct {
		IdentityPublic string `json:"identity_public"`
		Message        string `json:"message"`
		Signature      string `json:"signature"`
	}
	var k struct {
		KemPublicKey string `json:"kem_public_key"`
		Signature    string `json:"signature"`
	}
	for name, v := range map[string]any{"xeddsa.json": &x, "kem_prekey.json": &k} {
		raw, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			log.Fatal(err)
		}
		if err := json.Unmarshal(raw, v); err != nil {
			log.Fatalf("%s: %v", name, err)
		}
	}
	unhex := func(s string) []byte { return must(hex.DecodeString(s)) }
	return kemInputs{
		IdentityKey: unhex(x.IdentityPublic), SignedPreKey: unhex(x.Message), SignedPreKeySignature: unhex(x.Signature),
		PublicKey: unhex(k.KemPublicKey), Signature: unhex(k.Signature),
	}
}

// prekeyStatus is a prekey_status request with the given id.
func prekeyStatus(id uint64) *spec.Request {
	return &spec.Request{Id: id, Body: &spec.Request_PrekeyStatus{PrekeyStatus: &spec.PreKeyStatusRequest{}}}
}
