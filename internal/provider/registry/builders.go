package registry

import (
	"fmt"
	"net/url"
	"os"
	"strings"

	"bulkgen/internal/provider"
	"bulkgen/internal/provider/a1111"
	"bulkgen/internal/provider/bfl"
	"bulkgen/internal/provider/comfyui"
	"bulkgen/internal/provider/fal"
	"bulkgen/internal/provider/gemini"
	"bulkgen/internal/provider/openai"
	"bulkgen/internal/provider/openaicompat"
	"bulkgen/internal/provider/replicate"
	"bulkgen/internal/provider/stability"
)

func init() {
	builders = map[string]spec{
		"openai": keyed([]string{"OPENAI_API_KEY", "BULKGEN_OPENAI_API_KEY"}, []string{"OPENAI_BASE_URL"},
			func(key provider.Secret, base string, getenv func(string) string) (provider.Provider, error) {
				return openai.New(openai.Config{APIKey: key, BaseURL: base,
					Organization: getenv("OPENAI_ORG_ID"), Project: getenv("OPENAI_PROJECT_ID")}), nil
			}),
		"gemini": keyed([]string{"GEMINI_API_KEY", "GOOGLE_API_KEY", "BULKGEN_GEMINI_API_KEY"}, []string{"GEMINI_BASE_URL"},
			func(key provider.Secret, base string, _ func(string) string) (provider.Provider, error) {
				return gemini.New(gemini.Config{APIKey: key, BaseURL: base}), nil
			}),
		"stability": keyed([]string{"STABILITY_API_KEY", "BULKGEN_STABILITY_API_KEY"}, []string{"STABILITY_BASE_URL"},
			func(key provider.Secret, base string, _ func(string) string) (provider.Provider, error) {
				return stability.New(stability.Config{APIKey: key, BaseURL: base}), nil
			}),
		"replicate": keyed([]string{"REPLICATE_API_TOKEN", "BULKGEN_REPLICATE_API_TOKEN"}, []string{"REPLICATE_BASE_URL"},
			func(key provider.Secret, base string, _ func(string) string) (provider.Provider, error) {
				return replicate.New(replicate.Config{APIKey: key, BaseURL: base}), nil
			}),
		"fal": keyed([]string{"FAL_KEY", "BULKGEN_FAL_KEY"}, []string{"FAL_BASE_URL"},
			func(key provider.Secret, base string, _ func(string) string) (provider.Provider, error) {
				return fal.New(fal.Config{APIKey: key, BaseURL: base}), nil
			}),
		"bfl": keyed([]string{"BFL_API_KEY", "BULKGEN_BFL_API_KEY"}, []string{"BFL_BASE_URL"},
			func(key provider.Secret, base string, _ func(string) string) (provider.Provider, error) {
				return bfl.New(bfl.Config{APIKey: key, BaseURL: base}), nil
			}),
		"comfyui": hosted([]string{"COMFYUI_URL", "BULKGEN_COMFYUI_URL"},
			func(base string, getenv func(string) string) (provider.Provider, error) {
				_, path := firstVar(getenv, "COMFYUI_WORKFLOW", "BULKGEN_COMFYUI_WORKFLOW")
				if path == "" {
					return nil, fmt.Errorf("COMFYUI_URL is set but COMFYUI_WORKFLOW (an API-format workflow file) is not")
				}
				wf, err := os.ReadFile(path)
				if err != nil {
					return nil, fmt.Errorf("read COMFYUI_WORKFLOW: %w", err)
				}
				return comfyui.New(comfyui.Config{BaseURL: base, Workflow: wf})
			}),
		"a1111": hosted([]string{"A1111_URL", "BULKGEN_A1111_URL"},
			func(base string, getenv func(string) string) (provider.Provider, error) {
				pass, err := secret(getenv, "A1111_PASSWORD")
				if err != nil {
					return nil, err
				}
				return a1111.New(a1111.Config{BaseURL: base, Username: getenv("A1111_USERNAME"), Password: pass}), nil
			}),
		"openaicompat": hosted([]string{"OPENAI_COMPAT_URL", "BULKGEN_OPENAI_COMPAT_URL"},
			func(base string, getenv func(string) string) (provider.Provider, error) {
				key, err := secret(getenv, "OPENAI_COMPAT_API_KEY", "BULKGEN_OPENAI_COMPAT_API_KEY")
				if err != nil {
					return nil, err
				}
				return openaicompat.New(openaicompat.Config{APIKey: key, BaseURL: base}), nil
			}),
	}
}

// keyed builds a hosted provider enabled by an API key (or its _FILE form),
// with an optional base URL override.
func keyed(keyVars, baseVars []string, mk func(key provider.Secret, base string, getenv func(string) string) (provider.Provider, error)) spec {
	build := func(getenv func(string) string) (provider.Provider, bool, string, error) {
		key, err := secret(getenv, keyVars...)
		if err != nil {
			return nil, false, "", err
		}
		if key == "" {
			return nil, false, "set " + keyVars[0], nil
		}
		var base string
		if name, raw := firstVar(getenv, baseVars...); raw != "" {
			if base, err = checkURL(name, raw); err != nil {
				return nil, false, "", err
			}
		}
		p, err := mk(key, base, getenv)
		return p, err == nil, "", err
	}
	return spec{env: keyVars, build: build, baseVars: baseVars}
}

// hosted builds a self-hosted provider enabled by its URL (or a file
// holding it, like keys).
func hosted(urlVars []string, mk func(base string, getenv func(string) string) (provider.Provider, error)) spec {
	build := func(getenv func(string) string) (provider.Provider, bool, string, error) {
		raw, from, err := lookup(getenv, urlVars...)
		if err != nil {
			return nil, false, "", err
		}
		if raw == "" {
			return nil, false, "set " + urlVars[0], nil
		}
		base, err := checkURL(from, raw.Reveal())
		if err != nil {
			return nil, false, "", err
		}
		p, err := mk(base, getenv)
		return p, err == nil, "", err
	}
	return spec{env: urlVars, build: build}
}

// checkURL accepts an http or https URL with a host and returns it without
// a trailing slash. The error names the variable but never quotes its
// value: a key pasted into the wrong variable must not end up in a log.
func checkURL(name, raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "" {
		return "", fmt.Errorf("%s is not a usable base URL: want http:// or https:// followed by a host name, e.g. https://api.example.com/v1", name)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("%s must be a plain http(s) base URL, without a query string or fragment: the adapter appends API paths to it", name)
	}
	return strings.TrimRight(raw, "/"), nil
}

// firstVar returns the first of names that is set, and its value.
func firstVar(getenv func(string) string, names ...string) (string, string) {
	for _, n := range names {
		if v := strings.TrimSpace(getenv(n)); v != "" {
			return n, v
		}
	}
	return "", ""
}

// secret reads the first of names that is set, or the file named by its
// NAME_FILE form (for Docker and Kubernetes secrets).
func secret(getenv func(string) string, names ...string) (provider.Secret, error) {
	v, _, err := lookup(getenv, names...)
	return v, err
}

// lookup is secret that also says which variable the value came from
// ("X" or "X_FILE"), for messages.
func lookup(getenv func(string) string, names ...string) (provider.Secret, string, error) {
	for _, n := range names {
		if v := strings.TrimSpace(getenv(n)); v != "" {
			return provider.Secret(v), n, nil
		}
		if path := strings.TrimSpace(getenv(n + "_FILE")); path != "" {
			b, err := os.ReadFile(path)
			if err != nil {
				return "", "", fmt.Errorf("read %s_FILE: %w", n, err)
			}
			v := strings.TrimSpace(string(b))
			if v == "" {
				return "", "", fmt.Errorf("%s_FILE names an empty file", n)
			}
			return provider.Secret(v), n + "_FILE", nil
		}
	}
	return "", "", nil
}
