// Package queue holds Pigeonhole's per-device ciphertext queues in Pebble:
// append durably (all messages of one send in one synced batch), read in
// order, delete on ack, expire, enforce per-device quotas, and wake a
// waiting reader the moment something arrives.
//
// It implements the storage side of spec/protocol.md sections "Send" and
// "The receive stream". Bodies are opaque bytes; the queue never looks
// inside them.
//
// Layout in Pebble (all keys start with "q/"):
//
//	q/m/<account:16><device:4><seq:8>  time_unix_ms(8) || sender(16) || body
//	                                    (the time's top bit set; a value
//	                                    written before sender shares is
//	                                    time_unix_ms(8) || body)
//	q/h/<account:16><device:4>         highest seq ever assigned (uint64 BE),
//	                                    written with every delete so a seq
//	                                    is never reused after a restart
//	q/d/<dedup key>                    time_unix_ms(8) of the first append
//	q/t/<time_unix_ms:8><dedup key>    index for expiring q/d/ entries
//
// Quotas are per device (Config.MaxCount, MaxBytes) and per sending
// account per device (SenderMaxCount, SenderMaxBytes: a sender's share,
// so that one stranger cannot fill a device's queue). Both are counted in
// memory from the stored values when a device's state is loaded and kept
// exact by every append, ack, expiry and delete; there is no separate
// counter record to drift from the messages.
//
// Sequence numbers are per device, start at 1 and only grow. A reader only
// sees a seq once every lower seq of that device is committed or abandoned,
// so concurrent appends that commit out of order never make a reader skip
// one.
package queue
