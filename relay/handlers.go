package relay

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"strings"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/pigeonhole/pigeonhole/keys"
	"github.com/pigeonhole/pigeonhole/spec"
)

// dispatch runs one request and returns its response.
func (c *conn) dispatch(id quic.StreamID, req *spec.Request) *spec.Response {
	var (
		name string
		resp = &spec.Response{}
		e    *spec.Error
	)
	switch b := req.Body.(type) {
	case *spec.Request_Register:
		name = "register"
		var r *spec.RegisterResponse
		r, e = c.register(b.Register)
		resp.Body = &spec.Response_Register{Register: r}
	case *spec.Request_UploadPrekeys:
		name = "upload_prekeys"
		var r *spec.UploadPreKeysResponse
		r, e = c.uploadPreKeys(id, b.UploadPrekeys)
		resp.Body = &spec.Response_UploadPrekeys{UploadPrekeys: r}
	case *spec.Request_RotateSignedPrekey:
		name = "rotate_signed_prekey"
		e = c.rotateSignedPreKey(id, b.RotateSignedPrekey)
		resp.Body = &spec.Response_RotateSignedPrekey{RotateSignedPrekey: &spec.RotateSignedPreKeyResponse{}}
	case *spec.Request_UploadKemPrekeys:
		name = "upload_kem_prekeys"
		var r *spec.UploadKemPreKeysResponse
		r, e = c.uploadKemPreKeys(id, b.UploadKemPrekeys)
		resp.Body = &spec.Response_UploadKemPrekeys{UploadKemPrekeys: r}
	case *spec.Request_RotateLastResortKemPrekey:
		name = "rotate_last_resort_kem_prekey"
		e = c.rotateLastResortKemPreKey(id, b.RotateLastResortKemPrekey)
		resp.Body = &spec.Response_RotateLastResortKemPrekey{RotateLastResortKemPrekey: &spec.RotateLastResortKemPreKeyResponse{}}
	case *spec.Request_PrekeyStatus:
		name = "prekey_status"
		var r *spec.PreKeyStatusResponse
		r, e = c.preKeyStatus(id)
		resp.Body = &spec.Response_PrekeyStatus{PrekeyStatus: r}
	case *spec.Request_FetchKeys:
		name = "fetch_keys"
		var r *spec.FetchKeysResponse
		r, e = c.fetchKeys(id, b.FetchKeys)
		resp.Body = &spec.Response_FetchKeys{FetchKeys: r}
	case *spec.Request_Send:
		name = "send"
		var r *spec.SendResponse
		r, e = c.send(id, b.Send)
		resp.Body = &spec.Response_Send{Send: r}
	case *spec.Request_SetPushToken:
		name = "set_push_token"
		e = c.setPushToken(id, b.SetPushToken)
		resp.Body = &spec.Response_SetPushToken{SetPushToken: &spec.SetPushTokenResponse{}}
	case *spec.Request_CreateLinkCode:
		name = "create_link_code"
		var r *spec.CreateLinkCodeResponse
		r, e = c.createLinkCode(id)
		resp.Body = &spec.Response_CreateLinkCode{CreateLinkCode: r}
	case *spec.Request_Provision:
		name = "provision"
		e = c.provision(id, b.Provision)
		resp.Body = &spec.Response_Provision{Provision: &spec.ProvisionResponse{}}
	case *spec.Request_LinkDevice:
		name = "link_device"
		var r *spec.LinkDeviceResponse
		r, e = c.linkDevice(b.LinkDevice)
		resp.Body = &spec.Response_LinkDevice{LinkDevice: r}
	case *spec.Request_ListDevices:
		name = "list_devices"
		var r *spec.ListDevicesResponse
		r, e = c.listDevices(id)
		resp.Body = &spec.Response_ListDevices{ListDevices: r}
	case *spec.Request_RevokeDevice:
		name = "revoke_device"
		e = c.revokeDevice(id, b.RevokeDevice)
		resp.Body = &spec.Response_RevokeDevice{RevokeDevice: &spec.RevokeDeviceResponse{}}
	case *spec.Request_MultiSend:
		name = "multi_send"
		var r *spec.SendResponse
		r, e = c.multiSend(id, b.MultiSend)
		resp.Body = &spec.Response_MultiSend{MultiSend: r}
	case *spec.Request_UploadGrant:
		name = "upload_grant"
		var r *spec.UploadGrantResponse
		r, e = c.uploadGrant(id, b.UploadGrant)
		resp.Body = &spec.Response_UploadGrant{UploadGrant: r}
	case *spec.Request_DownloadGrant:
		name = "download_grant"
		var r *spec.DownloadGrantResponse
		r, e = c.downloadGrant(id, b.DownloadGrant)
		resp.Body = &spec.Response_DownloadGrant{DownloadGrant: r}
	case *spec.Request_SenderCertificate:
		name = "sender_certificate"
		var r *spec.SenderCertificateResponse
		r, e = c.senderCertificate(id)
		resp.Body = &spec.Response_SenderCertificate{SenderCertificate: r}
	case *spec.Request_SetUnidentifiedAccess:
		name = "set_unidentified_access"
		e = c.setUnidentifiedAccess(id, b.SetUnidentifiedAccess)
		resp.Body = &spec.Response_SetUnidentifiedAccess{SetUnidentifiedAccess: &spec.SetUnidentifiedAccessResponse{}}
	case *spec.Request_SealedSend:
		name = "sealed_send"
		var r *spec.SendResponse
		r, e = c.sealedSend(b.SealedSend)
		resp.Body = &spec.Response_SealedSend{SealedSend: r}
	default:
		name = "unknown"
		e = spec.Err(spec.CodeUnsupported, "unknown request type")
	}
	if e != nil {
		resp = &spec.Response{Error: e}
	}
	code := spec.CodeOK
	if e != nil {
		code = spec.Code(e.Code)
	}
	c.s.m.requests.WithLabelValues(name, code.String()).Inc()
	return resp
}

// keyError maps a key directory error to the client's error.
func (s *Server) keyError(what string, err error) *spec.Error {
	switch {
	case errors.Is(err, keys.ErrUnknownAccount):
		return spec.Err(spec.CodeUnknownAccount, "no such account")
	case errors.Is(err, keys.ErrUnknownDevice):
		return spec.Err(spec.CodeUnknownDevice, "no such device (it may have been removed)")
	case errors.Is(err, keys.ErrInvalidKey):
		return spec.Err(spec.CodeInvalidKey, "%s", strings.TrimPrefix(err.Error(), "keys: "))
	case errors.Is(err, keys.ErrBadKemSignature):
		return spec.Err(spec.CodeBadPreKeySignature, "%s (the identity key signs the KEM prekey's 1569-byte encoded public key)",
			strings.TrimPrefix(err.Error(), "keys: "))
	case errors.Is(err, keys.ErrBadSignature):
		return spec.Err(spec.CodeBadPreKeySignature, "the signed prekey's signature does not verify against the identity key")
	case errors.Is(err, keys.ErrBadLinkCode):
		return spec.Err(spec.CodeBadLinkCode, "the link code is unknown, used, expired or for another account")
	case errors.Is(err, keys.ErrTooManyDevices):
		return spec.Err(spec.CodeTooManyDevices, "the account has its maximum number of devices; revoke one first")
	case errors.Is(err, keys.ErrTooManyPreKeys):
		return spec.Err(spec.CodeTooManyPreKeys, "too many one-time prekeys (at most 100 per request, and a stored cap per device)")
	default:
		return s.internal(what, err)
	}
}

func signedPreKeyFrom(p *spec.SignedPreKey) keys.SignedPreKey {
	return keys.SignedPreKey{ID: p.GetId(), PublicKey: p.GetPublicKey(), Signature: p.GetSignature()}
}

func preKeysFrom(ps []*spec.PreKey) []keys.PreKey {
	out := make([]keys.PreKey, len(ps))
	for i, p := range ps {
		out[i] = keys.PreKey{ID: p.GetId(), PublicKey: p.GetPublicKey()}
	}
	return out
}

const maxPreKeysPerRequest = 100

// checkNewDevice applies what register and link_device share: the
// per-source-prefix rate limit, the auth key's size, a signed prekey, at
// most 100 one-time prekeys, and proof of the auth key bound to this
// connection. On success it returns a function that gives the rate
// limit's token back, for a request a later limit refuses.
func (c *conn) checkNewDevice(authKey, authProof []byte, spk *spec.SignedPreKey, preKeys int) (func(), *spec.Error) {
	undo, ok, wait := c.s.registerLimit.take(c.source(), c.s.now())
	if !ok {
		return nil, rateLimited(wait, "too many registrations from this network")
	}
	if len(authKey) != spec.AuthKeySize {
		return nil, spec.Err(spec.CodeInvalidKey, "auth_key must be a %d-byte Ed25519 public key", spec.AuthKeySize)
	}
	if spk == nil {
		return nil, spec.Err(spec.CodeBadRequest, "signed_prekey is required")
	}
	if preKeys > maxPreKeysPerRequest {
		return nil, spec.Err(spec.CodeTooManyPreKeys, "at most %d one-time prekeys per request", maxPreKeysPerRequest)
	}
	proof, err := spec.RegisterProof(c.exporter, authKey)
	if err != nil || len(authProof) != spec.AuthSignatureSize || !ed25519.Verify(authKey, proof, authProof) {
		return nil, spec.Err(spec.CodeBadSignature, "auth_proof does not verify for this connection")
	}
	return undo, nil
}

func (c *conn) register(r *spec.RegisterRequest) (*spec.RegisterResponse, *spec.Error) {
	if len(r.EncryptedName) > keys.MaxNameBytes {
		return nil, spec.Err(spec.CodeBadRequest, "encrypted_name is at most %d bytes", keys.MaxNameBytes)
	}
	undo, e := c.checkNewDevice(r.AuthKey, r.AuthProof, r.SignedPrekey, len(r.Prekeys))
	if e != nil {
		return nil, e
	}
	// The relay-wide ceiling counts only accounts made: a request that
	// failed its source's limit or its checks takes nothing from it, so
	// one source cannot spend it with refused requests; and a refusal
	// here costs the source nothing.
	undoAccount, ok, wait := c.s.accountLimit.take("", c.s.now())
	if !ok {
		undo()
		c.s.m.limited.WithLabelValues("new_accounts").Inc()
		return nil, rateLimited(wait, "the relay is taking no more new accounts right now")
	}
	acct, err := c.s.keys.CreateAccount(c.ctx, keys.Device{
		AuthKey:        bytes.Clone(r.AuthKey),
		IdentityKey:    r.IdentityKey,
		RegistrationID: r.RegistrationId,
		SignedPreKey:   signedPreKeyFrom(r.SignedPrekey),
		KemLastResort:  kemPreKeyFrom(r.LastResortKemPrekey),
		Name:           bytes.Clone(r.EncryptedName),
	}, preKeysFrom(r.Prekeys))
	if err != nil {
		undoAccount()
		return nil, c.s.keyError("create account", err)
	}
	c.s.log.Info("account registered", c.s.debugAttr("account", acct.String()))
	return &spec.RegisterResponse{AccountId: acct[:], DeviceId: 1}, nil
}

func (c *conn) uploadPreKeys(id quic.StreamID, r *spec.UploadPreKeysRequest) (*spec.UploadPreKeysResponse, *spec.Error) {
	acct, dev, e := c.waitAuth(c.ctx, id)
	if e != nil {
		return nil, e
	}
	if len(r.Prekeys) > maxPreKeysPerRequest {
		return nil, spec.Err(spec.CodeTooManyPreKeys, "at most %d one-time prekeys per request", maxPreKeysPerRequest)
	}
	n, err := c.s.keys.AddPreKeys(c.ctx, acct, dev, preKeysFrom(r.Prekeys))
	if err != nil {
		return nil, c.s.keyError("store prekeys", err)
	}
	return &spec.UploadPreKeysResponse{Stored: uint32(n)}, nil
}

func (c *conn) rotateSignedPreKey(id quic.StreamID, r *spec.RotateSignedPreKeyRequest) *spec.Error {
	acct, dev, e := c.waitAuth(c.ctx, id)
	if e != nil {
		return e
	}
	if r.SignedPrekey == nil {
		return spec.Err(spec.CodeBadRequest, "signed_prekey is required")
	}
	if err := c.s.keys.RotateSignedPreKey(c.ctx, acct, dev, signedPreKeyFrom(r.SignedPrekey)); err != nil {
		return c.s.keyError("rotate signed prekey", err)
	}
	return nil
}

func (c *conn) preKeyStatus(id quic.StreamID) (*spec.PreKeyStatusResponse, *spec.Error) {
	acct, dev, e := c.waitAuth(c.ctx, id)
	if e != nil {
		return nil, e
	}
	n, err := c.s.keys.PreKeyCount(c.ctx, acct, dev)
	if err != nil {
		return nil, c.s.keyError("count prekeys", err)
	}
	kn, lastResort, err := c.s.keys.KemPreKeyCount(c.ctx, acct, dev)
	if err != nil {
		return nil, c.s.keyError("count KEM prekeys", err)
	}
	return &spec.PreKeyStatusResponse{Stored: uint32(n), KemStored: uint32(kn), KemLastResort: lastResort}, nil
}

func (c *conn) fetchKeys(id quic.StreamID, r *spec.FetchKeysRequest) (*spec.FetchKeysResponse, *spec.Error) {
	requester, _, e := c.waitAuth(c.ctx, id)
	if e != nil {
		return nil, e
	}
	if ok, wait := c.s.fetchLimit.allow(string(requester[:]), c.s.now()); !ok {
		return nil, rateLimited(wait, "too many key fetches")
	}
	if len(r.AccountId) != spec.AccountIDSize {
		return nil, spec.Err(spec.CodeBadRequest, "account_id must be %d bytes", spec.AccountIDSize)
	}
	var target keys.AccountID
	copy(target[:], r.AccountId)
	// Each target device gives one-time prekeys to other accounts at
	// most at PreKeyClaimLimit, however many accounts ask; past it the
	// bundle comes without one. An account's own devices are not limited.
	var mayClaim func(uint32) bool
	if target != requester {
		now := c.s.now()
		mayClaim = func(dev uint32) bool {
			ok, _ := c.s.claimLimit.allow(claimKey(target, dev), now)
			if !ok {
				c.s.m.limited.WithLabelValues("prekey_claims").Inc()
			}
			return ok
		}
	}
	bundles, err := c.s.keys.FetchBundles(c.ctx, target, mayClaim)
	if err != nil {
		return nil, c.s.keyError("fetch keys", err)
	}
	resp := &spec.FetchKeysResponse{AccountId: target[:]}
	for _, b := range bundles {
		db := &spec.DeviceBundle{
			DeviceId:       b.DeviceID,
			RegistrationId: b.RegistrationID,
			IdentityKey:    b.IdentityKey,
			SignedPrekey: &spec.SignedPreKey{
				Id: b.SignedPreKey.ID, PublicKey: b.SignedPreKey.PublicKey, Signature: b.SignedPreKey.Signature,
			},
		}
		low := false
		if b.PreKey != nil {
			db.Prekey = &spec.PreKey{Id: b.PreKey.ID, PublicKey: b.PreKey.PublicKey}
			low = b.Remaining < c.s.cfg.PreKeyLowThreshold
		}
		if k := b.KemPreKey; k != nil {
			db.KemPrekey = &spec.KemPreKey{Id: k.ID, PublicKey: k.PublicKey, Signature: k.Signature}
			db.KemLastResort = b.KemLastResort
			low = low || (!b.KemLastResort && b.KemRemaining < c.s.cfg.PreKeyLowThreshold)
		}
		if low {
			c.s.notifyDevice(addrOf(target, b.DeviceID), preKeysLowEvent(b.Remaining, b.KemRemaining))
		}
		resp.Devices = append(resp.Devices, db)
	}
	return resp, nil
}

func (c *conn) send(id quic.StreamID, r *spec.SendRequest) (*spec.SendResponse, *spec.Error) {
	start := time.Now()
	sender, senderDev, e := c.waitAuth(c.ctx, id)
	if e != nil {
		return nil, e
	}
	if e := c.s.allowSend(sender); e != nil {
		return nil, e
	}
	if len(r.Recipient) != spec.AccountIDSize {
		return nil, spec.Err(spec.CodeBadRequest, "recipient must be %d bytes", spec.AccountIDSize)
	}
	if len(r.ClientMessageId) != spec.ClientMessageIDSize {
		return nil, spec.Err(spec.CodeBadRequest, "client_message_id must be %d bytes", spec.ClientMessageIDSize)
	}
	if len(r.Messages) > c.s.cfg.MaxSendDevices {
		return nil, spec.Err(spec.CodeBadRequest, "at most %d device messages per send", c.s.cfg.MaxSendDevices)
	}
	msgs, missing, extra, se := c.recipientMessages(sender, senderDev, keys.AccountID(r.Recipient), r.Messages, r.ClientMessageId)
	if se != nil {
		return nil, se
	}
	if len(missing)+len(extra) > 0 {
		se := spec.Err(spec.CodeStaleDevices, "the device list is stale: %d missing, %d extra", len(missing), len(extra))
		se.MissingDevices, se.ExtraDevices = missing, extra
		return nil, se
	}
	c.s.m.sendChecks.Observe(time.Since(start).Seconds())
	return c.commitSend(start, sender, senderDev, r.ClientMessageId, msgs, r.OnlineOnly)
}

// diffDevices compares an account's devices with the devices a send named
// (both ascending).
func diffDevices(have, named []uint32) (missing, extra []uint32) {
	i, j := 0, 0
	for i < len(have) || j < len(named) {
		switch {
		case j == len(named) || (i < len(have) && have[i] < named[j]):
			missing = append(missing, have[i])
			i++
		case i == len(have) || named[j] < have[i]:
			extra = append(extra, named[j])
			j++
		default:
			i++
			j++
		}
	}
	return missing, extra
}
