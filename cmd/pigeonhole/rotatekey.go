package main

import (
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/pigeonhole/pigeonhole/relay"
)

func rotateSenderKeyFlagSet(f *adminFlags) *flag.FlagSet {
	return adminFlagSet("rotate-sender-key", "", `Writes the next sender certificate key (sender-cert-key-ID.pem in -data)
so that the relay signs sender certificates with it from its next start;
the keys before it stay listed to clients for one certificate lifetime
(24 h) after that start, so certificates they signed still verify. The
relay must be stopped: rotate, then start it.`, f)
}

// rotateSenderKey is "pigeonhole rotate-sender-key". It refuses while a
// relay runs on -data (its admin socket answers, or its database is
// locked): the listed keys are worked out on the assumption that every
// rotation is followed by a start (relay.SenderCertKeys.Listed).
func rotateSenderKey(args []string) int {
	var f adminFlags
	if code, ok := parseAdmin(rotateSenderKeyFlagSet(&f), args, 0, "no arguments"); !ok {
		return code
	}
	if _, err := relay.LoadSenderCertKeys(f.data); errors.Is(err, os.ErrNotExist) {
		return fail("no sender certificate key in %s\npigeonhole: hint: serve makes one on its first start (is -data right?)", f.data)
	} else if err != nil {
		return fail("%v", err)
	}
	ctx, cancel := adminCtx()
	defer cancel()
	resp, err := askRelay(ctx, f.data, http.MethodGet, "/queues?top=0")
	var nr *noRelayError
	switch {
	case err == nil:
		resp.Body.Close()
		return fail("a relay is running on %s: stop it, rotate, then start it", f.data)
	case !errors.As(err, &nr):
		return fail("%v", err)
	}
	if _, err := os.Stat(filepath.Join(f.data, "db")); err == nil {
		db, err := openOffline(f.data)
		if err != nil {
			return fail("%v", err)
		}
		_ = db.Close()
	}
	k, err := relay.RotateSenderCertKey(f.data, time.Now())
	if err != nil {
		return fail("%v", err)
	}
	fmt.Printf("pigeonhole: new sender certificate key %s; the relay signs with it from its next start\n", k)
	return 0
}
