// Package messenger is the messaging flow an app embeds, on the relay
// client (relay/client) and the end-to-end layer (relay/client/e2e):
// register or link a device, send text to an account or a group, and
// receive decrypted messages, receipts, typing indicators, group changes
// and device changes through a Handler. It implements the client side
// of spec/protocol.md: "Send" (one ciphertext per device of the
// recipient, STALE_DEVICES followed, idempotent retries), "The account's
// devices stay in step" (copies to one's own devices), "Groups" (sender
// keys, given pairwise, replaced when a member leaves), "Keys" (one-time
// prekey refills, signed prekey rotation), "Sealed sender" (sealed
// sends, access keys, sender certificates) and "The receive stream"
// (each envelope acked only after the app's handler took it).
//
// # What it does for the app
//
//   - Send starts Signal sessions from fetched bundles with devices it has
//     none with, follows the relay when the recipient linked or removed
//     devices (refetches, forgets, encrypts again with the same client
//     message id, so a send lands once), and copies what it sent to this
//     account's other devices. A Content.ID reused on a retried Send
//     lands once too.
//   - Sends are sealed (the relay learns no sender) to every other
//     account whose unidentified-access key this device holds, on a
//     connection dialled for them that never authenticates; every
//     message carries this account's key, so contacts learn it. A send
//     goes identified, and SendResult says why, when no key came yet,
//     the message is too large for a sealed request (16 KiB), the relay
//     takes no sealed sends, or it refused the key (which is then
//     forgotten). Register makes the account's key; a linked device
//     learns it from its account's first message.
//   - SendGroup encrypts once with this device's sender key and sends
//     it sealed to each member account whose key it holds (one sealed
//     send each, with client message ids the relay cannot tie together)
//     and to the rest in one multi-send; member devices that lack the
//     sender key get it first. CreateGroup, ChangeGroup and RenameGroup
//     keep the group's state (the admin's) and send it to the members,
//     as cmd/pigeon's group commands do; Groups lists the groups and
//     Group shows one. A member the state missed is named in an
//     AnnounceError (the change holds; ChangeGroup with no change sends
//     it again).
//   - Safety numbers (trust.go): SafetyNumber and, after a send refused
//     with ErrIdentityChanged, OfferedSafetyNumber (the contact's new
//     key); MarkVerified and TrustOffered accept only the key whose
//     number was shown, and Verification says verified, not verified
//     or changed since verified.
//   - Run keeps a connection up, reconnecting with exponential backoff
//     (relay/client.Client), and hands each decrypted envelope to the
//     Handler. The envelope is acked only when the handler returned nil;
//     an error leaves it queued and, after a backoff, it comes again on a
//     new connection. An envelope can be decrypted once only (the ratchet
//     moves on), so e2e keeps its plaintext in the device's store, in the
//     transaction that decrypts it, until the handler took the event
//     (e2e's kept.go): a handler or store failure, or the app ending in
//     between, loses nothing, and the handler may see such a message
//     twice (its ID tells). A change the message made (a group's new
//     state) is announced again only while the same Run holds its event.
//   - Register and Link.Wait upload the new device's first one-time KEM
//     prekeys. Run refills one-time prekeys when the relay says they run
//     low (Config.PreKeys) and replaces the signed prekey and the
//     last-resort KEM prekey on schedule (Config.SignedPreKeyRotationHours;
//     a store with no record of a rotation starts counting when it is
//     first checked). It sends delivered receipts
//     for messages the handler took (Config.NoDeliveryReceipts).
//
// # Binding surface and Go surface
//
// gomobile binds this package for Android and iOS. The binding surface
// is Mobile (OpenMobile, RegisterMobile, StartMobileLink, MobileLink),
// the app's own store (MobileStore and MobileTxn, with OpenMobileStore,
// RegisterMobileStore and StartMobileLinkStore), Config, Content,
// SendResult, GroupInfo, GroupList, the Handler interface and the event
// types it gets (Message, Receipt, Typing, GroupChange, DeviceChange),
// LinkCheckCode, SafetyNumber and Verification (Mobile's safety-number
// calls), and the constants and error values: plain types only
// (signed integers, strings, booleans, byte slices, this package's
// structs and interfaces), no channels, maps, generics or unsigned
// integers; lists of ids are concatenated byte slices with Count and
// index methods, and MobileTxn.List's keys are one string, each key
// followed by a newline. TestBindingSurface checks these rules with
// go/types, and that the names above stay on the binding surface.
//
// The Go surface is for Go programs (cmd/pigeon, servers, tests):
// Messenger (whose calls take a context.Context, among them
// RefillPreKeys and RotateKeysIfDue, and OpenSealed and LearnAccessKey,
// for a program with a receive loop of its own; and the sends of any
// Content: SendContent, SendGroupContent, SendDelete,
// SendDeliveredReceipt), Open, OpenStore, OpenStorage, Register,
// RegisterStorage, StartLink, StartLinkStorage, Link and StorageLink,
// UnreachableError, AnnounceError and AnnounceFailure, GroupStates
// (group state kept by the program, as cmd/pigeon keeps it in its
// conversation files), TrustStates (the same for verification marks:
// cmd/pigeon's verified.json), and the store types (KV, KVStore and
// OpenKV; Store and its parts Identity, Sessions, SenderKeys, PreKeys,
// Trust, Records and Sealed, with the file-based DirStore
// and OpenDir). gomobile skips those names.
//
// # State
//
// Everything local is behind Store: e2e's device state (identity,
// sessions, prekeys, sender keys, contact identity keys; *e2e.Device
// implements those interfaces as it is) and the messenger's own records
// (group state, the verification marks, the key schedule, the sender certificate and pinned server keys, and
// the access keys for sealed sends, Sealed.AccessKeys). DirStore keeps
// both in one directory, the layout cmd/pigeon uses (Open, Register,
// StartLink), the access keys in the access-key and access-keys/ACCOUNT
// files. An app with its own database implements KV, a byte store
// (e2e.Storage: values under string keys, read and written in
// exclusive, all-or-nothing transactions), and uses OpenStorage,
// RegisterStorage and StartLinkStorage: e2e keeps its state in the KV
// under the keys e2e.Storage lists, the messenger its records under
// "messenger/" (KVStore), and the app never touches libsignal's stores.
// The directory is a KV too (e2e.NewDirStorage, the same files as
// DirStore).
// An Android or iOS app, whose code cannot pass a Go function across the
// binding, implements MobileStore instead (Begin, then Get, Put, Delete,
// List and Commit or Rollback on the MobileTxn; a missing key reads as
// null or an empty array) and uses OpenMobileStore, RegisterMobileStore
// and StartMobileLinkStore: Go makes it a KV, running each Transact as
// Begin, the operation, then Commit, or Rollback if the operation
// failed, all on one thread. Its transactions must be exclusive from
// Begin and all or nothing, as KV's are (MobileStore's doc comment says
// how SQLite gives that).
// One Messenger should own a store at a time. Session start is in one
// function (startSessions), so a change of key agreement (PQXDH) is
// made there.
package messenger
