package bedrock

import "testing"

func TestUsageFromSSE(t *testing.T) {
	cases := []struct {
		name   string
		stream string
		want   Usage
		ok     bool
	}{
		{"chat with usage", "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":3,\"total_tokens\":10}}\n\ndata: [DONE]\n\n",
			Usage{Input: 7, Output: 3}, true},
		{"chat without usage", "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\ndata: [DONE]\n\n", Usage{}, false},
		{"responses completed", "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"x\"}\n\nevent: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"id\":\"r\",\"usage\":{\"input_tokens\":5,\"output_tokens\":9,\"total_tokens\":14}}}\n\n",
			Usage{Input: 5, Output: 9}, true},
		{"messages", "event: message_start\r\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":12,\"output_tokens\":1,\"cache_read_input_tokens\":4}}}\r\n\r\nevent: message_delta\r\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":30}}\r\n\r\n",
			Usage{Input: 12, Output: 30, CacheRead: 4}, true},
		{"not json", "data: tokens\n", Usage{}, false},
		{"empty", "", Usage{}, false},
	}
	for _, tc := range cases {
		u, ok := UsageFromSSE([]byte(tc.stream))
		if u != tc.want || ok != tc.ok {
			t.Errorf("%s: %+v %v, want %+v %v", tc.name, u, ok, tc.want, tc.ok)
		}
	}
}

func FuzzUsageFromSSE(f *testing.F) {
	f.Add("data: {\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":3}}\n\n")
	f.Add("event: message_start\ndata: {\"message\":{\"usage\":{\"input_tokens\":1}}}\n")
	f.Fuzz(func(t *testing.T, s string) {
		u, ok := UsageFromSSE([]byte(s))
		if !ok && u != (Usage{}) && u.Input == 0 && u.Output == 0 && u.CacheRead == 0 && u.CacheWrite == 0 {
			t.Fatalf("inconsistent %+v", u)
		}
		if u.Input < 0 || u.Output < 0 {
			t.Fatalf("negative counts %+v from %q", u, s)
		}
	})
}
