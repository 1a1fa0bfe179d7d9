package spec

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/proto"
)

// vecKem holds the keys the KEM vectors carry, read from xeddsa.json and
// kem_prekey.json (whose signatures relay/client/e2e and keys check).
type vecKem struct {
	identity, spk, spkSig, pub, sig []byte
}

func readKemInputs(t *testing.T) vecKem {
	t.Helper()
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
		raw, err := os.ReadFile(filepath.Join("testdata", "vectors", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(raw, v); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	unhex := func(s string) []byte {
		b, err := hex.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	v := vecKem{unhex(x.IdentityPublic), unhex(x.Message), unhex(x.Signature), unhex(k.KemPublicKey), unhex(k.Signature)}
	if len(v.pub) != 1569 || v.pub[0] != 0x0a || len(v.sig) != 64 {
		t.Fatalf("kem_prekey.json: a %d-byte key of type %#x and a %d-byte signature", len(v.pub), v.pub[0], len(v.sig))
	}
	return v
}

// TestVectorKemMessages: the framed upload_kem_prekeys request, the
// fetch_keys answer with a last-resort KEM prekey and PreKeysLow with both
// counts, byte for byte and decoded field by field.
func TestVectorKemMessages(t *testing.T) {
	k := readKemInputs(t)
	upload := &Request{Id: 5, Body: &Request_UploadKemPrekeys{UploadKemPrekeys: &UploadKemPreKeysRequest{
		KemPrekeys: []*KemPreKey{{Id: 1, PublicKey: k.pub, Signature: k.sig}}}}}
	fetch := &Response{Id: 6, Body: &Response_FetchKeys{FetchKeys: &FetchKeysResponse{
		AccountId: vecAccountID,
		Devices: []*DeviceBundle{{
			DeviceId: 1, RegistrationId: 7, IdentityKey: k.identity,
			SignedPrekey:  &SignedPreKey{Id: 1, PublicKey: k.spk, Signature: k.spkSig},
			KemPrekey:     &KemPreKey{Id: 1000, PublicKey: k.pub, Signature: k.sig},
			KemLastResort: true,
		}},
	}}}
	low := &ServerEvent{Body: &ServerEvent_PrekeysLow{PrekeysLow: &PreKeysLow{Remaining: 3, KemRemaining: 9}}}
	for name, m := range map[string]proto.Message{"upload_kem_prekeys": upload, "fetch_keys_kem": fetch, "prekeys_low": low} {
		got, err := AppendFrame(nil, m)
		if err != nil {
			t.Fatal(err)
		}
		checkVector(t, name, got)
	}

	var req Request
	if err := ReadFrame(bytes.NewReader(readVector(t, "upload_kem_prekeys")), MaxFrameSize, &req); err != nil {
		t.Fatal(err)
	}
	kp := req.GetUploadKemPrekeys().GetKemPrekeys()
	if req.GetId() != 5 || len(kp) != 1 || kp[0].GetId() != 1 || !bytes.Equal(kp[0].GetPublicKey(), k.pub) || !bytes.Equal(kp[0].GetSignature(), k.sig) {
		t.Errorf("upload_kem_prekeys decoded to id %d, %d keys", req.GetId(), len(kp))
	}

	var resp Response
	if err := ReadFrame(bytes.NewReader(readVector(t, "fetch_keys_kem")), MaxFrameSize, &resp); err != nil {
		t.Fatal(err)
	}
	devs := resp.GetFetchKeys().GetDevices()
	if resp.GetId() != 6 || len(devs) != 1 {
		t.Fatalf("fetch_keys_kem decoded to id %d, %d bundles", resp.GetId(), len(devs))
	}
	b := devs[0]
	if b.GetPrekey() != nil || !b.GetKemLastResort() || b.GetKemPrekey().GetId() != 1000 ||
		!bytes.Equal(b.GetKemPrekey().GetPublicKey(), k.pub) || !bytes.Equal(b.GetIdentityKey(), k.identity) ||
		!bytes.Equal(b.GetSignedPrekey().GetSignature(), k.spkSig) {
		t.Errorf("fetch_keys_kem bundle decoded wrong")
	}
	if !proto.Equal(&resp, fetch) {
		t.Errorf("fetch_keys_kem decoded differs")
	}

	var ev ServerEvent
	if err := ReadFrame(bytes.NewReader(readVector(t, "prekeys_low")), MaxFrameSize, &ev); err != nil {
		t.Fatal(err)
	}
	if l := ev.GetPrekeysLow(); l.GetRemaining() != 3 || l.GetKemRemaining() != 9 {
		t.Errorf("prekeys_low decoded to %v", l)
	}
}
