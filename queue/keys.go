package queue

import (
	"encoding/binary"
	"time"
)

// Address names one device's queue.
type Address struct {
	Account [16]byte
	Device  uint32
}

const (
	addrSize   = 16 + 4
	msgKeySize = 4 + addrSize + 8
	timeSize   = 8
)

func devicePrefix(tag string, a Address) []byte {
	k := make([]byte, 0, msgKeySize)
	k = append(k, tag...)
	k = append(k, a.Account[:]...)
	return binary.BigEndian.AppendUint32(k, a.Device)
}

func msgPrefix(a Address) []byte { return devicePrefix("q/m/", a) }

func msgKey(a Address, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(msgPrefix(a), seq)
}

func hwKey(a Address) []byte { return devicePrefix("q/h/", a) }

// parseMsgKey splits a q/m/ key.
func parseMsgKey(k []byte) (Address, uint64, bool) {
	if len(k) != msgKeySize || string(k[:4]) != "q/m/" {
		return Address{}, 0, false
	}
	var a Address
	copy(a.Account[:], k[4:20])
	a.Device = binary.BigEndian.Uint32(k[20:24])
	return a, binary.BigEndian.Uint64(k[24:]), true
}

func dedupKey(key []byte) []byte { return append([]byte("q/d/"), key...) }

func dedupTimeKey(t time.Time, key []byte) []byte {
	k := binary.BigEndian.AppendUint64([]byte("q/t/"), uint64(t.UnixMilli()))
	return append(k, key...)
}

// A message's value is time_unix_ms(8) || sender(16) || body, with the
// top bit of the time set to say that a sender follows. A value without
// that bit (written before sender shares) is time(8) || body, and its
// message counts against no sender's share.
const (
	senderSize = 16
	senderFlag = uint64(1) << 63
)

func encodeValue(t time.Time, sender [16]byte, body []byte) []byte {
	v := make([]byte, 0, timeSize+senderSize+len(body))
	v = binary.BigEndian.AppendUint64(v, uint64(t.UnixMilli())|senderFlag)
	v = append(v, sender[:]...)
	return append(v, body...)
}

// value is a parsed message value.
type value struct {
	time   time.Time
	sender [16]byte
	named  bool // the value names its sender
	body   []byte
}

// parseValue splits a message value; body aliases v.
func parseValue(v []byte) (value, bool) {
	if len(v) < timeSize {
		return value{}, false
	}
	t := binary.BigEndian.Uint64(v)
	if t&senderFlag == 0 {
		return value{time: time.UnixMilli(int64(t)), body: v[timeSize:]}, true
	}
	if len(v) < timeSize+senderSize {
		return value{}, false
	}
	out := value{time: time.UnixMilli(int64(t &^ senderFlag)), named: true, body: v[timeSize+senderSize:]}
	copy(out.sender[:], v[timeSize:])
	return out, true
}

func encodeTime(t time.Time) []byte {
	return binary.BigEndian.AppendUint64(make([]byte, 0, timeSize), uint64(t.UnixMilli()))
}

func decodeTime(b []byte) time.Time {
	return time.UnixMilli(int64(binary.BigEndian.Uint64(b)))
}

// prefixEnd returns the smallest key greater than every key with prefix p.
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		end[i]++
		if end[i] != 0 {
			return end[:i+1]
		}
	}
	return nil
}
