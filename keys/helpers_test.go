package keys_test

import (
	"context"
	"testing"

	"github.com/cockroachdb/pebble/v2"

	"github.com/pigeonhole/pigeonhole/keys"
)

type silentPebble struct{}

func (silentPebble) Infof(string, ...any)         {}
func (silentPebble) Errorf(string, ...any)        {}
func (silentPebble) Fatalf(f string, args ...any) { panic(f) }

func openDB(t testing.TB, dir string) *pebble.DB {
	t.Helper()
	db, err := pebble.Open(dir, &pebble.Options{FormatMajorVersion: pebble.FormatNewest, Logger: silentPebble{}})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func openStore(t testing.TB, cfg keys.Config) *keys.Store {
	t.Helper()
	db := openDB(t, t.TempDir())
	t.Cleanup(func() { db.Close() })
	s, err := keys.Open(db, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func ctx() context.Context { return context.Background() }
