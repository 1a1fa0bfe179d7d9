package main

import (
	"errors"
	"regexp"
)

// userinfo matches the user and password part of a URL (scheme://user:
// password@host), up to the last '@' before the host.
var userinfo = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.-]*://)[^/\s,]*@`)

// redactURLs replaces the user and password of every URL in s with
// "REDACTED", so that a NATS password or token given in -store
// (nats://user:password@host, nats://token@host) never reaches an error
// message or a log line. Every message that quotes a flag holding URLs,
// or an error that may (a client library's), goes through it.
func redactURLs(s string) string {
	return userinfo.ReplaceAllString(s, "${1}REDACTED@")
}

// redactedError is an error whose message has its URLs' credentials
// redacted; errors.Is and errors.As still see the error it wraps.
type redactedError struct{ err error }

func (e redactedError) Error() string { return redactURLs(e.err.Error()) }
func (e redactedError) Unwrap() error { return e.err }

// redactErr returns err with its message redacted (nil for nil).
func redactErr(err error) error {
	if err == nil {
		return nil
	}
	var r redactedError
	if errors.As(err, &r) {
		return err
	}
	return redactedError{err}
}
