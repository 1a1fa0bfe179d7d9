package client_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestClientLinksNoServerCode enforces the import rule of DESIGN.md: the
// client packages never link the relay, the server's stores, or the
// MinIO, APNs and FCM code.
func TestClientLinksNoServerCode(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/pigeonhole/pigeonhole/relay/client/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	forbidden := []string{
		"github.com/pigeonhole/pigeonhole/relay",
		"github.com/pigeonhole/pigeonhole/keys",
		"github.com/pigeonhole/pigeonhole/queue",
		"github.com/pigeonhole/pigeonhole/push",
		"github.com/pigeonhole/pigeonhole/blobs",
		"github.com/minio/",
		"github.com/sideshow/apns2",
		"firebase.google.com/",
		"github.com/nats-io/",
	}
	for _, pkg := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if pkg == f || strings.HasPrefix(pkg, f+"/") || (strings.HasSuffix(f, "/") && strings.HasPrefix(pkg, f)) {
				if !strings.HasPrefix(pkg, "github.com/pigeonhole/pigeonhole/relay/client") {
					t.Errorf("relay/client links %s", pkg)
				}
			}
		}
	}
}
