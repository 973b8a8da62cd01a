package provider

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// DefaultMaxDownload caps a downloaded image (URL outputs) at 64 MiB.
const DefaultMaxDownload = 64 << 20

// Fetcher downloads provider output files (Replicate, fal, BFL and
// OpenAI-compatible URLs) with a size cap, a timeout, and a guard against
// server-side request forgery: private, loopback, link-local and other
// non-public addresses are refused unless AllowPrivate is set, which the
// registry does only when the provider itself is configured on such an
// address (a self-hosted server).
type Fetcher struct {
	// MaxBytes caps the body; zero means DefaultMaxDownload.
	MaxBytes int64
	// Timeout bounds one download; zero means 2 minutes.
	Timeout time.Duration
	// AllowPrivate permits every non-public address.
	AllowPrivate bool
	// AllowAddrs lists "ip:port" endpoints permitted even though they are
	// not public: the address of a provider configured on a private or
	// loopback host, so that its own output URLs can be fetched while a
	// redirect to any other internal address is still refused.
	AllowAddrs []string
	// Header is added to every request (for providers whose file URLs need
	// the API key, e.g. self-hosted servers).
	Header http.Header

	client *http.Client
}

// NewFetcher returns a Fetcher that refuses non-public addresses except
// the listed "ip:port" endpoints.
func NewFetcher(allowAddrs ...string) *Fetcher {
	f := &Fetcher{AllowAddrs: allowAddrs}
	f.init()
	return f
}

// AllowBase returns the "ip:port" endpoints of a provider base URL when its
// host is a literal IP or "localhost", for Fetcher.AllowAddrs. A provider
// configured on a loopback or private address is self-hosted (or a test
// server) and may serve its own output files.
func AllowBase(baseURL string) []string {
	u, err := url.Parse(baseURL)
	if err != nil || u.Host == "" {
		return nil
	}
	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	host := u.Hostname()
	if host == "localhost" {
		return []string{net.JoinHostPort("127.0.0.1", port), net.JoinHostPort("::1", port)}
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return []string{net.JoinHostPort(ip.String(), port)}
	}
	return nil
}

func (f *Fetcher) init() {
	if f.client != nil {
		return
	}
	dialer := &net.Dialer{Timeout: 15 * time.Second}
	if !f.AllowPrivate {
		// The check runs on the resolved address at connect time, so a DNS
		// name that resolves to a private address (or a redirect to one) is
		// refused as well as a literal IP.
		dialer.Control = func(network, address string, _ syscall.RawConn) error {
			host, _, err := net.SplitHostPort(address)
			if err != nil {
				return err
			}
			ip, err := netip.ParseAddr(host)
			if err != nil {
				return err
			}
			if slices.Contains(f.AllowAddrs, address) {
				return nil
			}
			if !IsPublicAddr(ip) {
				return fmt.Errorf("%w: %s", ErrPrivateAddress, ip)
			}
			return nil
		}
	}
	tr := &http.Transport{
		DialContext:           dialer.DialContext,
		TLSHandshakeTimeout:   15 * time.Second,
		ResponseHeaderTimeout: 60 * time.Second,
		MaxIdleConnsPerHost:   16,
		// No proxy: a proxy would resolve names for us and defeat the guard.
		Proxy: nil,
	}
	f.client = &http.Client{
		Transport: tr,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 5 {
				return errors.New("too many redirects")
			}
			if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
				return fmt.Errorf("redirect to unsupported scheme %q", req.URL.Scheme)
			}
			return nil
		},
	}
}

// ErrPrivateAddress is wrapped when a download would reach a non-public
// address without permission.
var ErrPrivateAddress = errors.New("refusing to download from a non-public address")

// ErrTooLarge is wrapped when a download exceeds the size cap.
var ErrTooLarge = errors.New("download exceeds the size limit")

// IsPublicAddr reports whether ip is a globally routable unicast address.
func IsPublicAddr(ip netip.Addr) bool {
	ip = ip.Unmap()
	if !ip.IsValid() || ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() ||
		ip.IsLinkLocalMulticast() || ip.IsMulticast() || ip.IsUnspecified() || ip.IsInterfaceLocalMulticast() {
		return false
	}
	for _, p := range nonPublic {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}

var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"), // carrier-grade NAT
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("64:ff9b::/96"),
	netip.MustParsePrefix("fc00::/7"),
}

// Get downloads rawURL and returns its body and content type. Failures are
// classified: a refused address or oversized body is Invalid, network
// errors and 5xx are Retryable, 404/410 (an expired signed URL) is Retryable
// so the job is redone rather than lost.
func (f *Fetcher) Get(ctx context.Context, provider, rawURL string) ([]byte, string, error) {
	f.init()
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, "", &Error{Class: Invalid, Provider: provider, Message: fmt.Sprintf("output URL %q is not http(s)", RedactURL(rawURL))}
	}
	timeout := f.Timeout
	if timeout == 0 {
		timeout = 2 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, "", &Error{Class: Invalid, Provider: provider, Err: err}
	}
	for k, v := range f.Header {
		req.Header[k] = v
	}
	resp, err := f.client.Do(req)
	if err != nil {
		if errors.Is(err, ErrPrivateAddress) {
			return nil, "", &Error{Class: Invalid, Provider: provider, Message: fmt.Sprintf("download %s: %v", RedactURL(rawURL), ErrPrivateAddress), Err: ErrPrivateAddress}
		}
		return nil, "", &Error{Class: Retryable, Provider: provider, Message: "download output: " + redactErr(err), Err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		class := ClassForStatus(resp.StatusCode)
		if resp.StatusCode == 404 || resp.StatusCode == 410 || resp.StatusCode == 403 {
			class = Retryable // expired or not yet available output URL
		}
		return nil, "", &Error{Class: class, Provider: provider, Status: resp.StatusCode, Message: "download output: " + resp.Status}
	}
	limit := f.MaxBytes
	if limit == 0 {
		limit = DefaultMaxDownload
	}
	if resp.ContentLength > limit {
		return nil, "", &Error{Class: Invalid, Provider: provider, Message: fmt.Sprintf("output is %d bytes, limit %d", resp.ContentLength, limit), Err: ErrTooLarge}
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, "", &Error{Class: Retryable, Provider: provider, Message: "download output: " + redactErr(err), Err: err}
	}
	if int64(len(body)) > limit {
		return nil, "", &Error{Class: Invalid, Provider: provider, Message: fmt.Sprintf("output exceeds the %d-byte limit", limit), Err: ErrTooLarge}
	}
	return body, resp.Header.Get("Content-Type"), nil
}

// RedactURL drops the query string (signed URLs carry credentials in it).
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<invalid URL>"
	}
	u.RawQuery = ""
	u.User = nil
	return u.String()
}

func redactErr(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Op + " " + RedactURL(ue.URL) + ": " + ue.Err.Error()
	}
	return err.Error()
}

// ParseRetryAfter reads the provider's requested delay from the response
// headers: retry-after-ms (milliseconds), Retry-After (seconds or an HTTP
// date). It returns zero when none is present or parseable.
func ParseRetryAfter(h http.Header, now time.Time) time.Duration {
	if v := h.Get("Retry-After-Ms"); v != "" {
		if ms, err := strconv.ParseFloat(v, 64); err == nil && ms > 0 {
			return time.Duration(ms * float64(time.Millisecond))
		}
	}
	if v := strings.TrimSpace(h.Get("Retry-After")); v != "" {
		if s, err := strconv.ParseFloat(v, 64); err == nil && s > 0 {
			return time.Duration(s * float64(time.Second))
		}
		if t, err := http.ParseTime(v); err == nil {
			if d := t.Sub(now); d > 0 {
				return d
			}
		}
	}
	return 0
}

// MaskKey shows at most the first four and last four characters of a secret,
// enough to tell keys apart and never enough to use one.
func MaskKey(key string) string {
	if key == "" {
		return ""
	}
	if len(key) <= 12 {
		return strings.Repeat("*", 8)
	}
	return key[:4] + "…" + key[len(key)-4:]
}

// Secret is an API key that never prints itself: fmt and slog see a mask.
type Secret string

// String masks the secret.
func (s Secret) String() string { return MaskKey(string(s)) }

// GoString masks the secret for %#v.
func (s Secret) GoString() string { return strconv.Quote(MaskKey(string(s))) }

// Reveal returns the raw value, for building the request header only.
func (s Secret) Reveal() string { return string(s) }

// Scrub removes every occurrence of the secret from a message that might
// echo it back (some providers quote the key they refused).
func (s Secret) Scrub(msg string) string {
	if len(s) < 4 {
		return msg
	}
	return strings.ReplaceAll(msg, string(s), MaskKey(string(s)))
}

// LogValue masks the secret for log/slog.
func (s Secret) LogValue() slog.Value { return slog.StringValue(MaskKey(string(s))) }
