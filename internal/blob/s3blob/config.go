package s3blob

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"bulkgen/internal/blob"
)

// Part sizes of a multipart upload. S3 refuses parts below 5 MiB (except
// the last) and above 5 GiB.
const (
	DefaultPartSize = 8 << 20
	MinPartSize     = 5 << 20
	MaxPartSize     = 5 << 30
)

// DefaultRegion is the region used when neither the URL nor AWS_REGION
// names one. Self-hosted servers accept any region; AWS answers a request
// signed for the wrong one with an error that names the right one.
const DefaultRegion = "us-east-1"

// maxPrefixLen keeps prefix + "/" + key within S3's 1,024-byte key limit
// for every key blob.ValidateKey accepts.
const maxPrefixLen = 1024 - 1 - blob.MaxKeyLen

// Config says which bucket a Store uses and how to reach it. ParseURL
// builds one from a URL and the environment; tests and tools may fill one
// in directly. New checks it.
type Config struct {
	// Bucket is the bucket's name.
	Bucket string
	// Prefix, if not empty, is put before every key with a "/" between, so
	// several stores (or other data) can share one bucket: "bulkgen/images"
	// stores "ab/….png" as "bulkgen/images/ab/….png". It follows the rules
	// of blob.ValidateKey and has no leading or trailing slash.
	Prefix string
	// Endpoint is the base URL of an S3-compatible server
	// ("http://127.0.0.1:7070"); empty means AWS.
	Endpoint string
	// Region is the region requests are signed for.
	Region string
	// PathStyle puts the bucket in the URL path instead of the host name,
	// which self-hosted servers usually need.
	PathStyle bool

	// AccessKeyID, SecretAccessKey and SessionToken (optional) are the
	// credentials. They never appear in logs, fmt output or errors.
	AccessKeyID     string
	SecretAccessKey string
	SessionToken    string

	// PartSize is the size of each part of a multipart upload, and the
	// size above which Put uses one; 0 means DefaultPartSize. Put holds one
	// part in memory at a time.
	PartSize int64
	// ListPageSize is how many keys List asks for per request, 1 to 1,000;
	// 0 means 1,000 (S3's maximum).
	ListPageSize int32
	// HTTPClient, if set, sends the requests (a custom CA, a proxy, a
	// test's counting transport). Close leaves it alone.
	HTTPClient *http.Client
}

// queryParams are the settings a URL's query may hold.
var queryParams = []string{"endpoint", "region", "path_style"}

// ParseURL reads a blob store URL, s3://bucket[/prefix][?endpoint=…&region=…&path_style=…],
// and takes the credentials (and defaults for the region and endpoint)
// from the environment through getenv: AWS_ACCESS_KEY_ID,
// AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION, and
// AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL. The URL's parameters win over
// the environment. path_style defaults to true when there is an endpoint
// (a self-hosted server) and to false for AWS. Errors never repeat the
// credentials.
func ParseURL(raw string, getenv func(string) string) (Config, error) {
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	// Error messages quote parts of the URL (at most 64 characters each),
	// so a secret pasted into it would come back out, perhaps cut short.
	secrets := []string{"AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"}
	for _, name := range secrets {
		if v := getenv(name); len(v) >= 8 && strings.Contains(raw, v) {
			return Config{}, fmt.Errorf("s3 blob store URL: it holds the value of %s; credentials do not belong in the URL", name)
		}
	}
	cfg, err := parseURL(raw, getenv)
	if err != nil {
		msg := err.Error()
		for _, name := range secrets { // in case the environment mixed them up
			if v := getenv(name); len(v) >= 8 {
				msg = strings.ReplaceAll(msg, v, "(redacted)")
			}
		}
		return Config{}, fmt.Errorf("s3 blob store URL: %s", msg)
	}
	return cfg, nil
}

func parseURL(raw string, getenv func(string) string) (Config, error) {
	if raw == "" {
		return Config{}, errors.New("empty; want s3://bucket[/prefix]")
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error repeats the whole URL, which may hold a secret.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return Config{}, fmt.Errorf("not a valid URL: %v", err)
	}
	if u.Scheme != "s3" {
		return Config{}, fmt.Errorf("scheme %.64q, want s3://bucket[/prefix]", u.Scheme)
	}
	if u.Opaque != "" {
		return Config{}, errors.New("want s3://bucket[/prefix], with two slashes")
	}
	if u.User != nil {
		return Config{}, errors.New("credentials do not belong in the URL: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
	}
	if u.Fragment != "" || strings.HasSuffix(raw, "#") {
		return Config{}, errors.New("a URL fragment (#…) means nothing here")
	}
	if u.Port() != "" || strings.HasSuffix(u.Host, ":") {
		return Config{}, fmt.Errorf("the bucket name %.64q has a port; name the server with ?endpoint=http://host:port", u.Host)
	}
	cfg := Config{
		Bucket:          u.Host,
		Region:          getenv("AWS_REGION"),
		Endpoint:        getenv("AWS_ENDPOINT_URL_S3"),
		AccessKeyID:     getenv("AWS_ACCESS_KEY_ID"),
		SecretAccessKey: getenv("AWS_SECRET_ACCESS_KEY"),
		SessionToken:    getenv("AWS_SESSION_TOKEN"),
	}
	if cfg.Endpoint == "" {
		cfg.Endpoint = getenv("AWS_ENDPOINT_URL")
	}
	// A path is the prefix; one trailing slash ("s3://b/images/") is
	// allowed, doubled or dotted segments are not.
	cfg.Prefix = strings.TrimSuffix(strings.TrimPrefix(u.Path, "/"), "/")

	query, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return Config{}, fmt.Errorf("query: %v", err)
	}
	pathStyle := ""
	for name, values := range query {
		if !slices.Contains(queryParams, name) {
			return Config{}, fmt.Errorf("unknown parameter %.64q; known: %s", name, strings.Join(queryParams, ", "))
		}
		if len(values) != 1 {
			return Config{}, fmt.Errorf("parameter %.64q given %d times", name, len(values))
		}
		if values[0] == "" {
			return Config{}, fmt.Errorf("parameter %.64q is empty; leave it out for the default", name)
		}
		switch v := values[0]; name {
		case "endpoint":
			cfg.Endpoint = v
		case "region":
			cfg.Region = v
		case "path_style":
			pathStyle = v
		}
	}
	if cfg.Region == "" {
		cfg.Region = DefaultRegion
	}
	cfg.PathStyle = cfg.Endpoint != ""
	if pathStyle != "" {
		b, err := strconv.ParseBool(pathStyle)
		if err != nil {
			return Config{}, fmt.Errorf("path_style=%.64q, want true or false", pathStyle)
		}
		cfg.PathStyle = b
	}
	if err := cfg.validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// validate reports the first problem of c. Its messages name settings and
// never quote a credential.
func (c Config) validate() error {
	if err := validateBucket(c.Bucket); err != nil {
		return err
	}
	if c.Prefix != "" {
		if len(c.Prefix) > maxPrefixLen {
			return fmt.Errorf("prefix is %d bytes, longer than %d", len(c.Prefix), maxPrefixLen)
		}
		if err := blob.ValidateKey(c.Prefix); err != nil {
			return fmt.Errorf("prefix %.64q: segments of letters, digits, '.', '_' and '-', none empty or starting with a dot", c.Prefix)
		}
	}
	if c.Endpoint != "" {
		if err := validateEndpoint(c.Endpoint); err != nil {
			return err
		}
	}
	if c.Region == "" {
		return errors.New("no region")
	}
	for _, r := range c.Region {
		if !('a' <= r && r <= 'z' || '0' <= r && r <= '9' || r == '-') {
			return fmt.Errorf("region %.64q: want lowercase letters, digits and '-' (like eu-west-1)", c.Region)
		}
	}
	switch {
	case c.AccessKeyID == "" && c.SecretAccessKey == "":
		return errors.New("no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
	case c.AccessKeyID == "":
		return errors.New("AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not")
	case c.SecretAccessKey == "":
		return errors.New("AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not")
	}
	if c.PartSize != 0 && (c.PartSize < MinPartSize || c.PartSize > MaxPartSize) {
		return fmt.Errorf("part size %d: want %d to %d bytes", c.PartSize, MinPartSize, MaxPartSize)
	}
	if c.ListPageSize < 0 || c.ListPageSize > 1000 {
		return fmt.Errorf("list page size %d: want 1 to 1000", c.ListPageSize)
	}
	return nil
}

// validateBucket applies S3's naming rules for new buckets: 3 to 63
// lowercase letters, digits, dots and hyphens, starting and ending with a
// letter or digit, no "..", and not shaped like an IP address.
func validateBucket(b string) error {
	if b == "" {
		return errors.New("no bucket: want s3://bucket[/prefix]")
	}
	if len(b) < 3 || len(b) > 63 {
		return fmt.Errorf("bucket name %.64q: want 3 to 63 characters", b)
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '-') {
			return fmt.Errorf("bucket name %.64q has the character %q; want lowercase letters, digits, '.' and '-'", b, c)
		}
	}
	if !isAlnum(b[0]) || !isAlnum(b[len(b)-1]) {
		return fmt.Errorf("bucket name %.64q must start and end with a letter or digit", b)
	}
	if strings.Contains(b, "..") {
		return fmt.Errorf("bucket name %.64q has two dots in a row", b)
	}
	if net.ParseIP(b) != nil {
		return fmt.Errorf("bucket name %.64q is an IP address", b)
	}
	return nil
}

func isAlnum(c byte) bool { return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' }

// validateEndpoint accepts http(s)://host[:port][/].
func validateEndpoint(e string) error {
	u, err := url.Parse(e)
	if err != nil {
		return errors.New("endpoint is not a valid URL; want http(s)://host[:port]")
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("endpoint scheme %.64q; want http(s)://host[:port]", u.Scheme)
	case u.User != nil:
		return errors.New("endpoint has credentials in it; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY instead")
	case u.Host == "" || u.Hostname() == "":
		return errors.New("endpoint has no host; want http(s)://host[:port]")
	case u.Path != "" && u.Path != "/", u.RawQuery != "", u.Fragment != "":
		return fmt.Errorf("endpoint %s has a path, query or fragment; want http(s)://host[:port]", u.Redacted())
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("endpoint port %.64q; want 1 to 65535", p)
		}
	}
	return nil
}

// LogValue implements slog.LogValuer: the settings without the secret key
// or session token, and only the start of the access key ID.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("bucket", c.Bucket),
		slog.String("prefix", c.Prefix),
		slog.String("endpoint", c.Endpoint),
		slog.String("region", c.Region),
		slog.Bool("path_style", c.PathStyle),
		slog.String("access_key_id", maskID(c.AccessKeyID)),
		slog.String("secret_access_key", redacted(c.SecretAccessKey)),
		slog.String("session_token", redacted(c.SessionToken)),
	)
}

// String describes c without its secrets, for %v and %+v.
func (c Config) String() string {
	return fmt.Sprintf("s3blob.Config{bucket=%q prefix=%q endpoint=%q region=%q path_style=%t access_key_id=%q secret_access_key=%s session_token=%s}",
		c.Bucket, c.Prefix, c.Endpoint, c.Region, c.PathStyle, maskID(c.AccessKeyID), redacted(c.SecretAccessKey), redacted(c.SessionToken))
}

// GoString is String, for %#v.
func (c Config) GoString() string { return c.String() }

// maskID keeps the first four characters of an access key ID, enough to
// tell keys apart in a log ("AKIA…" for AWS's long-term keys).
func maskID(id string) string {
	if len(id) <= 8 {
		return redacted(id)
	}
	return id[:4] + "…"
}

func redacted(s string) string {
	if s == "" {
		return "(none)"
	}
	return "(redacted)"
}
