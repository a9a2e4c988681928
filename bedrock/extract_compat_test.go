package bedrock

import (
	"strings"
	"testing"
)

// The OpenAI chat and Anthropic Messages shapes: message text, content
// parts and tool calls are read; ids, model names and enumerations are not;
// images are unscannable.
func TestExtractCompat(t *testing.T) {
	cases := []struct {
		name      string
		op        Operation
		stream    string // event type: extract a stream event, not a request
		body      string
		texts     []string
		unscan    bool
		forbidden []string // strings that must not be read as text
	}{
		{name: "chat request", op: OpOpenAIChatCompletions,
			body:  `{"model":"openai.gpt-oss-20b-1:0","messages":[{"role":"system","content":"be brief"},{"role":"user","content":[{"type":"text","text":"hi 123"}]},{"role":"tool","tool_call_id":"call_9","content":"42"}]}`,
			texts: []string{"be brief", "hi 123", "42"}, forbidden: []string{"openai.gpt-oss-20b-1:0", "system", "call_9", "text"}},
		{name: "chat image", op: OpMantleChatCompletions,
			body:   `{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}}]}]}`,
			unscan: true, forbidden: []string{"data:image/png;base64,AAAA"}},
		{name: "chat chunk", op: OpOpenAIChatCompletions, stream: "",
			body:  `{"id":"chatcmpl-123","object":"chat.completion.chunk","model":"m","choices":[{"index":0,"delta":{"content":"41"},"finish_reason":null}]}`,
			texts: []string{"41"}, forbidden: []string{"chatcmpl-123", "chat.completion.chunk"}},
		{name: "messages request", op: OpMantleMessages,
			body:  `{"model":"anthropic.claude","max_tokens":10,"system":"sys","messages":[{"role":"user","content":[{"type":"text","text":"hello"}]}]}`,
			texts: []string{"sys", "hello"}, forbidden: []string{"anthropic.claude", "user"}},
		{name: "messages delta", op: OpMantleMessages, stream: "content_block_delta",
			body:  `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"4111"}}`,
			texts: []string{"4111"}, forbidden: []string{"text_delta", "content_block_delta"}},
		{name: "responses string input", op: OpOpenAIResponses,
			body:  `{"model":"m","instructions":"be kind","input":"hello","store":false}`,
			texts: []string{"hello", "be kind"}, forbidden: []string{"m"}},
		{name: "responses items", op: OpMantleResponses,
			body:  `{"model":"m","input":[{"role":"user","content":[{"type":"input_text","text":"hi there"}]},{"type":"function_call_output","call_id":"call_1","output":"result 7"}]}`,
			texts: []string{"hi there", "result 7"}, forbidden: []string{"input_text", "user", "call_1", "function_call_output"}},
		{name: "responses image", op: OpMantleResponses,
			body:   `{"model":"m","input":[{"role":"user","content":[{"type":"input_image","image_url":"data:image/png;base64,AAAA"}]}]}`,
			unscan: true, forbidden: []string{"data:image/png;base64,AAAA"}},
		{name: "responses delta", op: OpOpenAIResponses, stream: "response.output_text.delta",
			body:  `{"type":"response.output_text.delta","item_id":"msg_1","output_index":0,"content_index":0,"delta":"4111","sequence_number":3}`,
			texts: []string{"4111"}, forbidden: []string{"msg_1", "response.output_text.delta"}},
		{name: "responses completed", op: OpMantleResponses, stream: "response.completed",
			body:  `{"type":"response.completed","response":{"id":"resp_1","object":"response","model":"m","status":"completed","output":[{"type":"message","id":"msg_1","role":"assistant","content":[{"type":"output_text","text":"done","annotations":[]}]}],"usage":{"input_tokens":1,"output_tokens":1}}}`,
			texts: []string{"done"}, forbidden: []string{"resp_1", "msg_1", "assistant", "output_text", "completed"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var ex Extracted
			var err error
			if tc.name == "chat chunk" || tc.stream != "" {
				ex, err = ExtractStreamEvent(tc.op, "", tc.stream, []byte(tc.body))
			} else {
				ex, err = ExtractRequest(tc.op, "", []byte(tc.body))
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, sp := range ex.Texts {
				got = append(got, sp.Text)
			}
			all := strings.Join(got, "\x00")
			for _, w := range tc.texts {
				if !strings.Contains(all, w) {
					t.Errorf("texts %q lack %q", got, w)
				}
			}
			for _, f := range tc.forbidden {
				for _, g := range got {
					if g == f {
						t.Errorf("texts %q include %q", got, f)
					}
				}
			}
			if (len(ex.Unscannable) > 0) != tc.unscan {
				t.Errorf("unscannable %q, want %v", ex.Unscannable, tc.unscan)
			}
		})
	}
}
