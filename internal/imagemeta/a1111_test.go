package imagemeta

import (
	"errors"
	"reflect"
	"testing"
)

func TestA1111(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		p    Parameters
		want string
	}{
		{
			name: "full",
			p:    Parameters{Prompt: "a cat", NegativePrompt: "blurry", Steps: 20, Seed: 42, Width: 512, Height: 512, Model: "preview"},
			want: "a cat\nNegative prompt: blurry\nSteps: 20, Seed: 42, Size: 512x512, Model: preview",
		},
		{
			name: "no negative prompt",
			p:    Parameters{Prompt: "a dog", Steps: 30, Seed: 7, Width: 1024, Height: 768, Model: "sdxl"},
			want: "a dog\nSteps: 30, Seed: 7, Size: 1024x768, Model: sdxl",
		},
		{
			name: "omitted fields and extras",
			p: Parameters{Prompt: "lighthouse", Seed: -1, Width: 1024, Height: 1024, Model: "gpt-image-2",
				Extra: [][2]string{{"Provider", "openai"}, {"Quality", "high"}}},
			want: "lighthouse\nSize: 1024x1024, Model: gpt-image-2, Provider: openai, Quality: high",
		},
		{
			name: "quoted values",
			p: Parameters{Prompt: "x", Steps: 1, Seed: 0,
				Extra: [][2]string{{"Style", "a, b"}, {"Note", "time: 5"}, {"Lines", "one\ntwo"}, {"Q", `"hi"`}, {"Plain", `say "hi"`}}},
			want: "x\nSteps: 1, Seed: 0, Style: \"a, b\", Note: \"time: 5\", Lines: \"one\\ntwo\", Q: \"\\\"hi\\\"\", Plain: say \"hi\"",
		},
		{
			name: "no fields",
			p:    Parameters{Prompt: "  just a prompt ", Seed: -1},
			want: "just a prompt",
		},
		{
			name: "unicode kept",
			p:    Parameters{Prompt: "一只猫", Steps: 4, Seed: 1, Model: "flux", Extra: [][2]string{{"Style", "水墨, 古风"}}},
			want: "一只猫\nSteps: 4, Seed: 1, Model: flux, Style: \"水墨, 古风\"",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.p.A1111(); got != tt.want {
				t.Errorf("A1111() =\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}

func TestParseA1111(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want Parameters
	}{
		{
			name: "brief example",
			in:   "a cat\nNegative prompt: blurry\nSteps: 20, Seed: 42, Size: 512x512, Model: preview",
			want: Parameters{Prompt: "a cat", NegativePrompt: "blurry", Steps: 20, Seed: 42, Width: 512, Height: 512, Model: "preview"},
		},
		{
			name: "as A1111 writes it",
			in: "masterpiece, a castle on a hill\nwith clouds\nNegative prompt: lowres, bad anatomy\n" +
				`Steps: 28, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 3456789012, Size: 832x1216, Model hash: 31e35c80fc, Model: sd_xl_base_1.0, Lora hashes: "detail: abc123, style: def456", Version: v1.10.1`,
			want: Parameters{
				Prompt: "masterpiece, a castle on a hill\nwith clouds", NegativePrompt: "lowres, bad anatomy",
				Steps: 28, Seed: 3456789012, Width: 832, Height: 1216, Model: "sd_xl_base_1.0",
				Extra: [][2]string{
					{"Sampler", "DPM++ 2M"}, {"Schedule type", "Karras"}, {"CFG scale", "7"},
					{"Model hash", "31e35c80fc"}, {"Lora hashes", "detail: abc123, style: def456"}, {"Version", "v1.10.1"},
				},
			},
		},
		{
			name: "fewer than three fields belong to the prompt",
			in:   "a cat\nModel: x",
			want: Parameters{Prompt: "a cat\nModel: x", Seed: -1},
		},
		{
			name: "malformed known field kept in Extra",
			in:   "p\nSteps: many, Seed: 5, Size: big",
			want: Parameters{Prompt: "p", Seed: 5, Extra: [][2]string{{"Steps", "many"}, {"Size", "big"}}},
		},
		{
			name: "multi-line negative prompt",
			in:   "p\nNegative prompt: a\nb\nSteps: 2, Seed: 3, Model: m",
			want: Parameters{Prompt: "p", NegativePrompt: "a\nb", Steps: 2, Seed: 3, Model: "m"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseA1111(tt.in)
			if err != nil {
				t.Fatalf("ParseA1111: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseA1111 =\n%#v\nwant\n%#v", got, tt.want)
			}
		})
	}
}

func TestParseA1111Empty(t *testing.T) {
	t.Parallel()
	if _, err := ParseA1111(" \n "); !errors.Is(err, ErrEmpty) {
		t.Errorf("err = %v, want ErrEmpty", err)
	}
}

func TestA1111RoundTrip(t *testing.T) {
	t.Parallel()
	params := []Parameters{
		{Prompt: "a cat", NegativePrompt: "blurry", Steps: 20, Seed: 42, Width: 512, Height: 512, Model: "preview"},
		{Prompt: "他说：\"你好\"\n第二行", NegativePrompt: "模糊, 低质量", Steps: 8, Seed: 0, Width: 64, Height: 32, Model: "m:1",
			Extra: [][2]string{{"Provider", "preview"}, {"Style", "a, \"b\"\nc"}}},
	}
	for _, p := range params {
		got, err := ParseA1111(p.A1111())
		if err != nil {
			t.Fatalf("ParseA1111: %v", err)
		}
		if !reflect.DeepEqual(got, p) {
			t.Errorf("round trip of %q =\n%#v\nwant\n%#v", p.A1111(), got, p)
		}
	}
}
