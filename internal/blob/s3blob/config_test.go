package s3blob_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"bulkgen/internal/blob/s3blob"
)

const (
	testKeyID  = "AKIAEXAMPLEKEYID1234"
	testSecret = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"
	testToken  = "FwoGZXIvYXdzEXAMPLESESSIONTOKEN"
)

// env returns a getenv over m, with the test credentials unless m says
// otherwise.
func env(m map[string]string) func(string) string {
	full := map[string]string{"AWS_ACCESS_KEY_ID": testKeyID, "AWS_SECRET_ACCESS_KEY": testSecret}
	for k, v := range m {
		full[k] = v
	}
	return func(k string) string { return full[k] }
}

func TestParseURL(t *testing.T) {
	t.Parallel()
	base := s3blob.Config{Bucket: "images", Region: "us-east-1", AccessKeyID: testKeyID, SecretAccessKey: testSecret}
	with := func(f func(*s3blob.Config)) s3blob.Config { c := base; f(&c); return c }
	tests := []struct {
		name    string
		raw     string
		env     map[string]string
		want    s3blob.Config
		wantErr string // a part of the error; "" means no error
	}{
		{name: "bucket only", raw: "s3://images", want: base},
		{name: "trailing slash", raw: "s3://images/", want: base},
		{name: "prefix", raw: "s3://images/bulkgen/prod", want: with(func(c *s3blob.Config) { c.Prefix = "bulkgen/prod" })},
		{name: "prefix with trailing slash", raw: "s3://images/bulkgen/", want: with(func(c *s3blob.Config) { c.Prefix = "bulkgen" })},
		{name: "AWS region from env", raw: "s3://images", env: map[string]string{"AWS_REGION": "eu-west-3"},
			want: with(func(c *s3blob.Config) { c.Region = "eu-west-3" })},
		{name: "region parameter wins over env", raw: "s3://images?region=ap-south-1", env: map[string]string{"AWS_REGION": "eu-west-3"},
			want: with(func(c *s3blob.Config) { c.Region = "ap-south-1" })},
		{name: "self-hosted endpoint is path style", raw: "s3://images/p?endpoint=http://127.0.0.1:7070",
			want: with(func(c *s3blob.Config) { c.Prefix = "p"; c.Endpoint = "http://127.0.0.1:7070"; c.PathStyle = true })},
		{name: "endpoint with virtual hosts", raw: "s3://images?endpoint=https://s3.example.com&path_style=false",
			want: with(func(c *s3blob.Config) { c.Endpoint = "https://s3.example.com" })},
		{name: "path style on AWS", raw: "s3://images?path_style=true", want: with(func(c *s3blob.Config) { c.PathStyle = true })},
		{name: "endpoint from AWS_ENDPOINT_URL_S3", raw: "s3://images",
			env:  map[string]string{"AWS_ENDPOINT_URL_S3": "http://minio:9000", "AWS_ENDPOINT_URL": "http://other:1"},
			want: with(func(c *s3blob.Config) { c.Endpoint = "http://minio:9000"; c.PathStyle = true })},
		{name: "endpoint from AWS_ENDPOINT_URL", raw: "s3://images", env: map[string]string{"AWS_ENDPOINT_URL": "http://minio:9000/"},
			want: with(func(c *s3blob.Config) { c.Endpoint = "http://minio:9000/"; c.PathStyle = true })},
		{name: "endpoint parameter wins over env", raw: "s3://images?endpoint=http://a:1", env: map[string]string{"AWS_ENDPOINT_URL_S3": "http://b:2"},
			want: with(func(c *s3blob.Config) { c.Endpoint = "http://a:1"; c.PathStyle = true })},
		{name: "session token", raw: "s3://images", env: map[string]string{"AWS_SESSION_TOKEN": testToken},
			want: with(func(c *s3blob.Config) { c.SessionToken = testToken })},
		{name: "dotted bucket", raw: "s3://my.images-2", want: with(func(c *s3blob.Config) { c.Bucket = "my.images-2" })},

		{name: "empty", raw: "", wantErr: "empty"},
		{name: "no scheme", raw: "images/prefix", wantErr: `scheme ""`},
		{name: "other scheme", raw: "gs://images", wantErr: `scheme "gs"`},
		{name: "https URL", raw: "https://images.s3.amazonaws.com", wantErr: `scheme "https"`},
		{name: "one slash", raw: "s3:images", wantErr: "two slashes"},
		{name: "no bucket", raw: "s3:///prefix", wantErr: "no bucket"},
		{name: "short bucket", raw: "s3://ab", wantErr: "3 to 63"},
		{name: "long bucket", raw: "s3://" + strings.Repeat("b", 64), wantErr: "3 to 63"},
		{name: "uppercase bucket", raw: "s3://Images", wantErr: "character 'I'"},
		{name: "underscore bucket", raw: "s3://my_images", wantErr: "character '_'"},
		{name: "bucket ends with a hyphen", raw: "s3://images-", wantErr: "start and end"},
		{name: "bucket with two dots", raw: "s3://my..images", wantErr: "two dots"},
		{name: "IP bucket", raw: "s3://192.168.1.1", wantErr: "IP address"},
		{name: "port on the bucket", raw: "s3://images:9000/p", wantErr: "?endpoint="},
		{name: "empty port on the bucket", raw: "s3://images:/p", wantErr: "?endpoint="},
		{name: "credentials in the URL", raw: "s3://" + testKeyID + ":" + testSecret + "@images", wantErr: "do not belong in the URL"},
		{name: "user in the URL", raw: "s3://someone@images", wantErr: "do not belong in the URL"},
		{name: "fragment", raw: "s3://images#x", wantErr: "fragment"},
		{name: "empty fragment", raw: "s3://images#", wantErr: "fragment"},
		{name: "bad escape", raw: "s3://images/%zz", wantErr: "not a valid URL"},
		{name: "bad escape with a secret", raw: "s3://u:" + testSecret + "@images/%zz", wantErr: "credentials do not belong in the URL"},
		{name: "control character", raw: "s3://images/a\x00b", wantErr: "not a valid URL"},
		{name: "double slash in prefix", raw: "s3://images//p", wantErr: "prefix"},
		{name: "dot-dot prefix", raw: "s3://images/a/../b", wantErr: "prefix"},
		{name: "dot prefix", raw: "s3://images/.hidden", wantErr: "prefix"},
		{name: "space in prefix", raw: "s3://images/a%20b", wantErr: "prefix"},
		{name: "huge prefix", raw: "s3://images/" + strings.Repeat("p", 600), wantErr: "longer than"},
		{name: "unknown parameter", raw: "s3://images?pathstyle=true", wantErr: `unknown parameter "pathstyle"`},
		{name: "repeated parameter", raw: "s3://images?region=a&region=b", wantErr: "2 times"},
		{name: "bad query", raw: "s3://images?region=%zz", wantErr: "query"},
		{name: "empty endpoint", raw: "s3://images?endpoint=", env: map[string]string{"AWS_ENDPOINT_URL_S3": "http://b:2"}, wantErr: `"endpoint" is empty`},
		{name: "empty region", raw: "s3://images?region", wantErr: `"region" is empty`},
		{name: "bad path_style", raw: "s3://images?path_style=yes", wantErr: "path_style"},
		{name: "bad region", raw: "s3://images?region=EU%20West", wantErr: "region"},
		{name: "endpoint without scheme", raw: "s3://images?endpoint=minio:9000", wantErr: "endpoint scheme"},
		{name: "endpoint of another scheme", raw: "s3://images?endpoint=ftp://minio", wantErr: "endpoint scheme"},
		{name: "endpoint without host", raw: "s3://images?endpoint=http://", wantErr: "no host"},
		{name: "endpoint with a path", raw: "s3://images?endpoint=http://minio:9000/s3", wantErr: "path"},
		{name: "endpoint with credentials", raw: "s3://images?endpoint=http://u:" + testSecret + "@minio", wantErr: "credentials"},
		{name: "endpoint with a bad port", raw: "s3://images?endpoint=http://minio:99999", wantErr: "port"},
		{name: "bad endpoint from env", raw: "s3://images", env: map[string]string{"AWS_ENDPOINT_URL_S3": "minio"}, wantErr: "endpoint"},
		{name: "no credentials", raw: "s3://images", env: map[string]string{"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""},
			wantErr: "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"},
		{name: "no secret", raw: "s3://images", env: map[string]string{"AWS_SECRET_ACCESS_KEY": ""}, wantErr: "AWS_SECRET_ACCESS_KEY is not"},
		{name: "no key ID", raw: "s3://images", env: map[string]string{"AWS_ACCESS_KEY_ID": ""}, wantErr: "AWS_ACCESS_KEY_ID is not"},
		{name: "secret as a parameter", raw: "s3://images?" + testSecret, wantErr: "holds the value of AWS_SECRET_ACCESS_KEY"},
		{name: "secret as a prefix", raw: "s3://images/x" + testSecret + "y", wantErr: "holds the value of AWS_SECRET_ACCESS_KEY"},
		{name: "token as a region", raw: "s3://images?region=" + testToken, env: map[string]string{"AWS_SESSION_TOKEN": testToken},
			wantErr: "holds the value of AWS_SESSION_TOKEN"},
		{name: "huge URL", raw: "s3://images/" + strings.Repeat("a/", 1<<20), wantErr: "longer than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := s3blob.ParseURL(tt.raw, env(tt.env))
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("ParseURL(%.80q) = %v, want an error with %q", tt.raw, got, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("ParseURL(%.80q) error = %q, want it to contain %q", tt.raw, err, tt.wantErr)
				}
				if strings.Contains(err.Error(), testSecret) || strings.Contains(err.Error(), testSecret[:16]) || strings.Contains(err.Error(), testToken[:16]) {
					t.Errorf("ParseURL(%.80q) error %q repeats the secret", tt.raw, err)
				}
				if len(err.Error()) > 2000 {
					t.Errorf("ParseURL error is %d bytes long, want a short message", len(err.Error()))
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseURL(%q): %v", tt.raw, err)
			}
			if got != tt.want {
				t.Errorf("ParseURL(%q) =\n%+v, want\n%+v", tt.raw, got, tt.want)
			}
		})
	}
}

func TestParseURLNilGetenv(t *testing.T) {
	t.Parallel()
	if _, err := s3blob.ParseURL("s3://images", nil); err == nil || !strings.Contains(err.Error(), "no credentials") {
		t.Errorf("ParseURL with no environment error = %v, want one about credentials", err)
	}
}

// TestConfigHidesSecrets: neither slog nor fmt shows the secret key or the
// session token, whatever the verb.
func TestConfigHidesSecrets(t *testing.T) {
	t.Parallel()
	cfg, err := s3blob.ParseURL("s3://images/p?endpoint=http://127.0.0.1:7070", env(map[string]string{"AWS_SESSION_TOKEN": testToken}))
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("blob store", "blob", cfg)
	slog.New(slog.NewTextHandler(&logs, nil)).Info("blob store", "blob", cfg)
	outputs := map[string]string{
		"slog": logs.String(),
		"%v":   fmt.Sprintf("%v", cfg),
		"%+v":  fmt.Sprintf("%+v", cfg),
		"%#v":  fmt.Sprintf("%#v", cfg),
		"%s":   cfg.String(),
		"&%v":  fmt.Sprintf("%v", &cfg),
	}
	for verb, out := range outputs {
		for _, secret := range []string{testSecret, testToken, testKeyID} {
			if strings.Contains(out, secret) {
				t.Errorf("%s output shows a secret: %s", verb, out)
			}
		}
		if !strings.Contains(out, "images") || !strings.Contains(out, "127.0.0.1:7070") {
			t.Errorf("%s output lacks the bucket or endpoint: %s", verb, out)
		}
	}
	if !strings.Contains(logs.String(), `"access_key_id":"AKIA…"`) || !strings.Contains(logs.String(), `"secret_access_key":"(redacted)"`) {
		t.Errorf("JSON log = %s, want the key ID's start and the secret redacted", logs.String())
	}
}

// FuzzParseURL: any input gives a Config or an error, never a panic; the
// error never repeats a secret, even when the URL carries it; a
// Config has a bucket and a prefix without outer slashes.
func FuzzParseURL(f *testing.F) {
	for _, seed := range []string{
		"s3://images", "s3://images/a/b/", "s3://images?endpoint=http://127.0.0.1:7070&region=eu-west-1&path_style=true",
		"s3://u:" + testSecret + "@images/%zz", "s3://images?endpoint=http://u:" + testSecret + "@h", "s3:images",
		"s3://images#frag", "s3://images:9000", "s3:///p", "s3://images/a//b", "s3://Images", "s3://1.2.3.4",
		"s3://images?region=%zz", "s3://images?x=1&x=2",
	} {
		f.Add(seed)
	}
	getenv := env(map[string]string{"AWS_SESSION_TOKEN": testToken})
	f.Fuzz(func(t *testing.T, raw string) {
		cfg, err := s3blob.ParseURL(raw, getenv)
		if err != nil {
			// The error may quote what the URL says, but never more of a
			// secret than the URL holds, and never a whole one.
			for _, part := range []string{testSecret, testSecret[:16], testSecret[20:], testToken, testToken[:16]} {
				if strings.Contains(err.Error(), part) && (len(part) >= len(testToken) || !strings.Contains(raw, part)) {
					t.Fatalf("ParseURL(%q) error %q repeats a secret", raw, err)
				}
			}
			return
		}
		if cfg.Bucket == "" || strings.HasPrefix(cfg.Prefix, "/") || strings.HasSuffix(cfg.Prefix, "/") {
			t.Fatalf("ParseURL(%q) = %v: no bucket, or a prefix with an outer slash", raw, cfg)
		}
		if cfg.SecretAccessKey != testSecret || cfg.SessionToken != testToken {
			t.Fatalf("ParseURL(%q) took the credentials from somewhere else than the environment", raw)
		}
		if s := cfg.String(); strings.Contains(s, testSecret) || strings.Contains(s, testToken) {
			t.Fatalf("Config.String() = %q shows a secret", s)
		}
	})
}
