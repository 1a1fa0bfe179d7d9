package main

import (
	"fmt"
	"strings"

	"github.com/pigeonhole/pigeonhole/relay/client/e2e"
)

// printSessionKinds says, for verify, which key agreement each session
// with acct's devices was started with: PQXDH (post-quantum) or X3DH.
func (c *cli) printSessionKinds(d *e2e.Device, acct []byte, who string) {
	ids, err := d.SessionDevices(acct)
	if err != nil || len(ids) == 0 {
		return
	}
	parts := make([]string, 0, len(ids))
	for _, id := range ids {
		kind := "X3DH"
		if pq, err := d.PostQuantum(acct, id); err != nil {
			kind = "unreadable"
		} else if pq {
			kind = "PQXDH (post-quantum)"
		}
		parts = append(parts, fmt.Sprintf("device %d %s", id, kind))
	}
	fmt.Fprintf(c.stderr, "pigeon: sessions with %s: %s\n", who, strings.Join(parts, ", "))
}
