package blobs

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// minio-go presigns with time.Now and offers no clock to replace, so to get
// an expired grant without waiting, the test re-signs a real grant itself
// (AWS Signature V4, query form) as if it had been made in the past. That
// the re-signer is right is checked first: re-signing with the grant's own
// date and lifetime must reproduce minio-go's signature exactly.

const amzDate = "20060102T150405Z"

// s3Resign returns grant g's URL signed as if presigned at signedAt for
// expires seconds.
func s3Resign(t *testing.T, cfg S3Config, g Grant, signedAt time.Time, expires int) string {
	t.Helper()
	u, err := url.Parse(g.URL)
	if err != nil {
		t.Fatal(err)
	}
	signedAt = signedAt.UTC()
	day := signedAt.Format("20060102")
	scope := day + "/" + defaultS3Region + "/s3/aws4_request"
	q := u.Query()
	q.Del("X-Amz-Signature")
	q.Set("X-Amz-Date", signedAt.Format(amzDate))
	q.Set("X-Amz-Expires", strconv.Itoa(expires))
	q.Set("X-Amz-Credential", cfg.AccessKey+"/"+scope)
	query := strings.ReplaceAll(q.Encode(), "+", "%20")

	var headers strings.Builder
	for _, name := range strings.Split(q.Get("X-Amz-SignedHeaders"), ";") {
		v := g.Header.Get(name)
		if name == "host" {
			v = u.Host
		}
		headers.WriteString(name + ":" + v + "\n")
	}
	canonical := strings.Join([]string{
		g.Method, u.EscapedPath(), query, headers.String(),
		q.Get("X-Amz-SignedHeaders"), "UNSIGNED-PAYLOAD",
	}, "\n")
	sum := sha256.Sum256([]byte(canonical))
	toSign := "AWS4-HMAC-SHA256\n" + signedAt.Format(amzDate) + "\n" + scope + "\n" + hex.EncodeToString(sum[:])

	key := []byte("AWS4" + cfg.SecretKey)
	for _, part := range []string{day, defaultS3Region, "s3", "aws4_request", toSign} {
		m := hmac.New(sha256.New, key)
		m.Write([]byte(part))
		key = m.Sum(nil)
	}
	u.RawQuery = query + "&X-Amz-Signature=" + hex.EncodeToString(key)
	return u.String()
}

func TestS3ExpiredGrant(t *testing.T) {
	s, cfg := newTestS3(t)
	ctx := t.Context()
	data := []byte("expiring")
	up, err := s.UploadGrant(ctx, "exp", int64(len(data)), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	down, err := s.presign(ctx, http.MethodGet, "exp", time.Minute, nil, http.Header{}) // before the upload, so no Stat
	if err != nil {
		t.Fatal(err)
	}

	for _, g := range []Grant{up, down} {
		u, _ := url.Parse(g.URL)
		at, err := time.Parse(amzDate, u.Query().Get("X-Amz-Date"))
		if err != nil {
			t.Fatal(err)
		}
		if got := s3Resign(t, cfg, g, at, 60); got != g.URL {
			t.Fatalf("the test's re-signer disagrees with minio-go:\n got %s\nwant %s", got, g.URL)
		}
	}

	// Signed two minutes ago, valid for one second: long expired.
	past := time.Now().Add(-2 * time.Minute)
	expiredUp := s3WithURL(up, s3Resign(t, cfg, up, past, 1))
	status, body := s3MustSend(t, expiredUp, data)
	if status != http.StatusForbidden {
		t.Errorf("expired upload grant: %d %s; want 403", status, body)
	}
	t.Logf("expired upload grant: MinIO answered %d %s", status, s3ErrorCode(body))
	s3WantNotStored(t, s, "exp")

	// Signed two minutes ago, valid for an hour: still good, which shows
	// that only the expiry made the difference above.
	if status, body := s3MustSend(t, s3WithURL(up, s3Resign(t, cfg, up, past, 3600)), data); status != http.StatusOK {
		t.Fatalf("re-signed live upload grant: %d %s", status, body)
	}
	status, body = s3MustSend(t, s3WithURL(down, s3Resign(t, cfg, down, past, 1)), nil)
	if status != http.StatusForbidden {
		t.Errorf("expired download grant: %d %s; want 403", status, body)
	}
	if status, got := s3MustSend(t, down, nil); status != http.StatusOK || string(got) != string(data) {
		t.Errorf("live download grant: %d %q", status, got)
	}
}
