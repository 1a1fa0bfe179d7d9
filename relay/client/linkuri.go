package client

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// ErrBadLinkURI is wrapped by every error of ParseLinkURI.
var ErrBadLinkURI = errors.New("bad link URI")

// Link URI layout and limits.
const (
	linkURIPrefix   = "pigeonhole://"
	linkURIHost     = "link"
	maxLinkURILen   = 512
	linkAddrLen     = 16
	linkPubLen      = 33
	linkPubKeyType  = 0x05
	linkFPHexDigits = 64
	maxHostnameLen  = 253
	maxDNSLabelLen  = 63
)

// LinkURI is what a new device shows (as a QR code) for a primary device to link it.
type LinkURI struct {
	Relay       string // host:port of the relay (UDP)
	Fingerprint string // relay certificate SHA-256 fingerprint, 64 lower-case hex digits
	Address     []byte // provisioning address, 16 bytes
	PublicKey   []byte // the new device's ephemeral Curve25519 public key, 33 bytes starting 0x05
}

// String formats u as
// pigeonhole://link?v=1&relay=HOST%3APORT&fp=HEX&addr=B64&pub=B64, with the
// parameters always in that order and base64url without padding. It does
// not validate u; ParseLinkURI does.
func (u LinkURI) String() string {
	var b strings.Builder
	b.WriteString(linkURIPrefix + linkURIHost + "?v=1&relay=")
	b.WriteString(url.QueryEscape(u.Relay))
	b.WriteString("&fp=")
	b.WriteString(u.Fingerprint)
	b.WriteString("&addr=")
	b.WriteString(base64.RawURLEncoding.EncodeToString(u.Address))
	b.WriteString("&pub=")
	b.WriteString(base64.RawURLEncoding.EncodeToString(u.PublicKey))
	return b.String()
}

// ParseLinkURI parses and validates a link URI in the format of
// LinkURI.String, accepting its parameters in any order. Every error wraps
// ErrBadLinkURI and names the part that is wrong.
func ParseLinkURI(s string) (LinkURI, error) {
	if len(s) > maxLinkURILen {
		return LinkURI{}, badLink("length: %d bytes, the limit is %d", len(s), maxLinkURILen)
	}
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok || scheme != "pigeonhole" {
		return LinkURI{}, badLink("scheme: want pigeonhole://")
	}
	if strings.Contains(rest, "#") {
		return LinkURI{}, badLink("fragment: not allowed")
	}
	hostPath, query, _ := strings.Cut(rest, "?")
	host, path, hasPath := strings.Cut(hostPath, "/")
	if host != linkURIHost {
		return LinkURI{}, badLink("host: %q, want %q", host, linkURIHost)
	}
	if hasPath {
		return LinkURI{}, badLink("path: %q, want none", "/"+path)
	}
	params, err := linkParams(query)
	if err != nil {
		return LinkURI{}, err
	}
	if params["v"] != "1" {
		return LinkURI{}, badLink("v: version %q, want 1", params["v"])
	}
	u := LinkURI{Relay: params["relay"], Fingerprint: params["fp"]}
	if err := checkRelay(u.Relay); err != nil {
		return LinkURI{}, err
	}
	if !isLowerHex(u.Fingerprint, linkFPHexDigits) {
		return LinkURI{}, badLink("fp: want %d lower-case hex digits", linkFPHexDigits)
	}
	if u.Address, err = decodeLinkBytes("addr", params["addr"], linkAddrLen); err != nil {
		return LinkURI{}, err
	}
	if u.PublicKey, err = decodeLinkBytes("pub", params["pub"], linkPubLen); err != nil {
		return LinkURI{}, err
	}
	if u.PublicKey[0] != linkPubKeyType {
		return LinkURI{}, badLink("pub: key type 0x%02x, want 0x%02x", u.PublicKey[0], linkPubKeyType)
	}
	// u.String() may be longer than s (an unescaped relay), but a valid
	// relay is at most 259 bytes, so it stays far below maxLinkURILen.
	return u, nil
}

// linkParams splits query into its parameters, refusing unknown,
// duplicate, malformed and missing ones.
func linkParams(query string) (map[string]string, error) {
	params := make(map[string]string, 5)
	for kv := range strings.SplitSeq(query, "&") {
		if kv == "" {
			if query == "" {
				break // reported as a missing parameter below
			}
			return nil, badLink("empty parameter")
		}
		key, raw, ok := strings.Cut(kv, "=")
		switch key {
		case "v", "relay", "fp", "addr", "pub":
		default:
			return nil, badLink("unknown parameter %q", key)
		}
		if !ok {
			return nil, badLink("%s: no value", key)
		}
		if _, dup := params[key]; dup {
			return nil, badLink("%s: duplicate parameter", key)
		}
		val, err := url.QueryUnescape(raw)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrBadLinkURI, key, err)
		}
		params[key] = val
	}
	for _, key := range []string{"v", "relay", "fp", "addr", "pub"} {
		if _, ok := params[key]; !ok {
			return nil, badLink("%s: missing parameter", key)
		}
	}
	return params, nil
}

// checkRelay accepts a canonical host:port: a DNS name or an IP address
// without zone, bracketed only if IPv6, and a port 1..65535 in plain
// decimal.
func checkRelay(relay string) error {
	host, port, err := net.SplitHostPort(relay)
	if err != nil {
		return fmt.Errorf("%w: relay: %w", ErrBadLinkURI, err)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != port {
		return badLink("relay: port %q, want 1..65535", port)
	}
	if addr, err := netip.ParseAddr(host); err == nil {
		if addr.Zone() != "" {
			return badLink("relay: IPv6 zone not allowed")
		}
	} else if !isHostname(host) {
		return badLink("relay: host %q is neither a DNS name nor an IP address", host)
	}
	if net.JoinHostPort(host, port) != relay {
		return badLink("relay: %q is not in host:port form", relay)
	}
	return nil
}

// isHostname reports whether h is a DNS name of letters, digits and
// hyphens in dot-separated labels.
func isHostname(h string) bool {
	if h == "" || len(h) > maxHostnameLen {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > maxDNSLabelLen ||
			label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// isLowerHex reports whether s is n lower-case hex digits.
func isLowerHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// decodeLinkBytes decodes the canonical unpadded base64url value of
// parameter key, which must hold exactly n bytes.
func decodeLinkBytes(key, val string, n int) ([]byte, error) {
	b, err := base64.RawURLEncoding.Strict().DecodeString(val)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: not unpadded base64url: %w", ErrBadLinkURI, key, err)
	}
	if len(b) != n {
		return nil, badLink("%s: %d bytes, want %d", key, len(b), n)
	}
	// The decoder skips CR and LF; insist on the one canonical form.
	if base64.RawURLEncoding.EncodeToString(b) != val {
		return nil, badLink("%s: not canonical base64url", key)
	}
	return b, nil
}

// badLink returns an error wrapping ErrBadLinkURI.
func badLink(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadLinkURI, fmt.Sprintf(format, args...))
}
