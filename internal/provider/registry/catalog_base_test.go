package registry

import (
	"context"
	"strings"
	"testing"

	"bulkgen/internal/catalog"
	"bulkgen/internal/provider"
	"bulkgen/internal/provider/openai/openaitest"
)

// TestCatalogBaseURL checks that a catalogue file can point a provider at
// another base URL, and that the environment still wins over it.
func TestCatalogBaseURL(t *testing.T) {
	t.Parallel()
	fromFile := openaitest.NewServer(t, openaitest.Options{MaxEdge: 64})
	fromEnv := openaitest.NewServer(t, openaitest.Options{MaxEdge: 64, Key: fromFile.Key})
	override := `{"providers": {"openai": {"base_url": "` + fromFile.URL + `"}}}`
	cat, err := catalog.Load(catalog.DefaultJSON(), strings.NewReader(override))
	if err != nil {
		t.Fatal(err)
	}
	req := provider.Request{Model: "gpt-image-2", Prompt: "a lighthouse", Width: 1024, Height: 1024, Format: "png", Count: 1}
	for _, tt := range []struct {
		name string
		env  map[string]string
		want *openaitest.Server
	}{
		{"catalogue file", map[string]string{"OPENAI_API_KEY": fromFile.Key}, fromFile},
		{"environment wins", map[string]string{"OPENAI_API_KEY": fromFile.Key, "OPENAI_BASE_URL": fromEnv.URL}, fromEnv},
	} {
		reg, err := Build(Config{Getenv: func(k string) string { return tt.env[k] }, Catalog: cat})
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		p, err := reg.Get("openai")
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		before := tt.want.Calls()
		if _, err := p.Generate(context.Background(), req); err != nil {
			t.Fatalf("%s: Generate: %v", tt.name, err)
		}
		if tt.want.Calls() != before+1 {
			t.Errorf("%s: the expected server saw no call", tt.name)
		}
	}
}
