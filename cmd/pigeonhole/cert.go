package main

import (
	"crypto/tls"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
)

// loadCertOnly reads the first certificate of a PEM file (no key needed to
// print a fingerprint).
func loadCertOnly(path string) (tls.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("read certificate: %w", err)
	}
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return tls.Certificate{}, errors.New("no certificate in " + path)
		}
		if blk.Type == "CERTIFICATE" {
			return tls.Certificate{Certificate: [][]byte{blk.Bytes}}, nil
		}
	}
}
