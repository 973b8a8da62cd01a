package registry

import (
	"fmt"
	"strings"
	"testing"

	"bulkgen/internal/provider/a1111"
	"bulkgen/internal/provider/bfl"
	"bulkgen/internal/provider/fal"
	"bulkgen/internal/provider/gemini"
	"bulkgen/internal/provider/openai"
	"bulkgen/internal/provider/openaicompat"
	"bulkgen/internal/provider/replicate"
	"bulkgen/internal/provider/stability"
)

// TestAdaptersNeverPrintKeys formats every keyed adapter with every verb a
// log line or a debug print might use and checks the key is not there.
func TestAdaptersNeverPrintKeys(t *testing.T) {
	t.Parallel()
	const key = "sk-very-secret-key-0123456789"
	clients := []any{
		openai.New(openai.Config{APIKey: key}),
		openaicompat.New(openaicompat.Config{APIKey: key, BaseURL: "http://127.0.0.1:1/v1"}),
		gemini.New(gemini.Config{APIKey: key}),
		stability.New(stability.Config{APIKey: key}),
		replicate.New(replicate.Config{APIKey: key}),
		fal.New(fal.Config{APIKey: key}),
		bfl.New(bfl.Config{APIKey: key}),
		a1111.New(a1111.Config{BaseURL: "http://127.0.0.1:1", Username: "u", Password: key}),
	}
	for _, c := range clients {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
			if out := fmt.Sprintf(verb, c); strings.Contains(out, key) || strings.Contains(out, "0123456789") {
				t.Errorf("%T printed with %s shows the key: %s", c, verb, out)
			}
		}
	}
}
