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
//     sender key get it first. CreateGroup and ChangeGroup keep the group's
//     state (the admin's), as cmd/pigeon does.
//   - Run keeps a connection up, reconnecting with exponential backoff
//     (relay/client.Client), and hands each decrypted envelope to the
//     Handler. The envelope is acked only when the handler returned nil;
//     an error leaves it queued and, after a backoff, it comes again on a
//     new connection. An envelope can be decrypted once only (the ratchet
//     moves on), so the event is kept in memory, never on disk, until the
//     handler takes it: if the process ends first, that message is lost.
//   - Run refills one-time prekeys when the relay says they run low
//     (Config.PreKeys) and replaces the signed prekey on schedule
//     (Config.SignedPreKeyRotationHours). It sends delivered receipts
//     for messages the handler took (Config.NoDeliveryReceipts).
//
// # Binding surface and Go surface
//
// gomobile binds this package for Android and iOS. The binding surface
// is Mobile (OpenMobile, RegisterMobile, StartMobileLink, MobileLink),
// Config, Content, SendResult, the Handler interface and the event types
// it gets (Message, Receipt, Typing, GroupChange, DeviceChange),
// LinkCheckCode, and the constants and error values: plain types only
// (signed integers, strings, booleans, byte slices, this package's
// structs and interfaces), no channels, maps, generics or unsigned
// integers; lists of ids are concatenated byte slices with Count and
// index methods. TestBindingSurface checks these rules with go/types.
//
// The Go surface is for Go programs (cmd/pigeon, servers, tests):
// Messenger (whose calls take a context.Context), Open, OpenStore,
// Register, StartLink and Link, and the store interfaces (Store and its
// parts Identity, Sessions, SenderKeys, PreKeys, Records and Sealed)
// with the file-based DirStore and OpenDir, GroupStates (group state
// kept by the program, as cmd/pigeon keeps it in its conversation
// files), the sends of any Content (SendContent, SendGroupContent,
// SendDelete, SendDeliveredReceipt), and the Messenger methods for a Go
// program's own receive loop (OpenSealed, LearnAccessKey).
// gomobile skips those names.
//
// # State
//
// Everything local is behind Store: e2e's device directory (identity,
// sessions, prekeys, sender keys; *e2e.Device implements those
// interfaces as it is) and the messenger's own records (group state,
// the key schedule, the sender certificate and pinned server keys). The
// access keys are in Sealed.AccessKeys: DirStore keeps them in the
// device directory's access-key and access-keys/ACCOUNT files, where
// cmd/pigeon has them. DirStore keeps both in one directory, the layout
// cmd/pigeon uses. An app with its own database implements Store:
// Records is plain keys and values, but Identity, Sessions, SenderKeys
// and PreKeys are e2e's operations, not bytes, so such a store runs
// libsignal on its own tables until e2e itself sits on a byte store.
// One Messenger should own a store at a time. Session start is in one
// function (startSessions), so a change of key agreement (PQXDH) is
// made there.
package messenger
