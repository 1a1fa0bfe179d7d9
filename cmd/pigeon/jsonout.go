package main

import (
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"time"
)

// jsonUsage is the help of the -json flag of recv, listen, devices and id.
const jsonUsage = "print one JSON object per line (JSON Lines) on stdout, for scripts"

// jsonFlag declares -json on fs.
func jsonFlag(fs *flag.FlagSet, v *bool) { fs.BoolVar(v, "json", false, jsonUsage) }

// event is one line of "pigeon recv -json" and "pigeon listen -json".
// The field names are stable and documented in UX.md; a field that does
// not apply is left out.
type event struct {
	// Type is "message", "sent" (a copy of what this account sent from
	// another device), "file", "typing", "receipt", "delete" or "group".
	Type string `json:"type"`
	// ID is the message's id (hex), as "pigeon history" and
	// "pigeon delete" take it.
	ID string `json:"id,omitempty"`
	// From is the sender's account id (32 hex digits), FromDevice its
	// device.
	From       string `json:"from"`
	FromDevice uint32 `json:"from_device"`
	// FromName is the sender's contact name, when it has one.
	FromName string `json:"from_name,omitempty"`
	// Self is true when the sender is another device of this account.
	Self bool `json:"self,omitempty"`
	// SentAt is when the sender says it sent it, RFC 3339 (UTC).
	SentAt string `json:"sent_at"`
	// Group and GroupName are the group's id and name, for group events.
	Group     string `json:"group,omitempty"`
	GroupName string `json:"group_name,omitempty"`
	// To is the recipient of a "sent" copy, ToName its contact name.
	To     string `json:"to,omitempty"`
	ToName string `json:"to_name,omitempty"`
	// Text is the message's text ("message", "sent").
	Text string `json:"text,omitempty"`
	// File, Path and Size describe a saved "file": the sender's name for
	// it, where it was saved and its size in bytes.
	File string `json:"file,omitempty"`
	Path string `json:"path,omitempty"`
	Size int64  `json:"size,omitempty"`
	// Typing is true when they started typing, false when they stopped
	// ("typing").
	Typing *bool `json:"typing,omitempty"`
	// Receipt is "delivered" or "read", IDs the messages it marks
	// ("receipt"); Deleted is the id of a message deleted for everyone
	// ("delete").
	Receipt string   `json:"receipt,omitempty"`
	IDs     []string `json:"ids,omitempty"`
	Deleted string   `json:"deleted,omitempty"`
	// Change is what happened to a group ("joined", "removed",
	// "changed"), with the accounts Added and Removed ("group").
	Change  string   `json:"change,omitempty"`
	Added   []string `json:"added,omitempty"`
	Removed []string `json:"removed,omitempty"`
	Members int      `json:"members,omitempty"`
}

// newEvent starts the event of type typ for what mt describes.
func (in *inbox) newEvent(typ string, mt meta) *event {
	e := &event{
		Type:       typ,
		From:       hex.EncodeToString(mt.from),
		FromDevice: uint32(mt.fromDevice),
		FromName:   in.names.name(hex.EncodeToString(mt.from)),
		Self:       in.self(mt.from),
		SentAt:     time.UnixMilli(mt.sentAt).UTC().Format(time.RFC3339),
	}
	if len(mt.id) == messageIDSize {
		e.ID = hex.EncodeToString(mt.id)
	}
	if mt.group != nil {
		e.Group = hex.EncodeToString(mt.group)
	}
	return e
}

// emit writes one JSON object and a newline to w.
func emit(w io.Writer, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("pigeon: cannot encode %T: %v", v, err)) // only plain fields: cannot happen
	}
	b = append(b, '\n')
	_, _ = w.Write(b)
}
