package proxy_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"

	"github.com/warden-egress/warden/bedrock/bedrocktest"
)

// Streamed values in real token sizes (issue 13): each value, cut into 1-,
// 2- and 3-byte tokens, through the real Go SDK, Warden and the emulator,
// for ConverseStream and every model family's InvokeModelWithResponseStream
// chunks. Under block the client sees no 4-character run of the value and
// a ModelStreamErrorException; under mask it sees the placeholder and no
// digit of the value.

var streamValues = []struct{ name, typ, value string }{
	{"card", "CREDIT_DEBIT_CARD_NUMBER", "4111 1111 1111 1111"},
	{"card-compact", "CREDIT_DEBIT_CARD_NUMBER", "4111111111111111"},
	{"ssn", "US_SOCIAL_SECURITY_NUMBER", "123-45-6789"},
	{"email", "EMAIL", "jo.smith@example.com"},
	{"aws-key", "AWS_ACCESS_KEY", "AKIAIOSFODNN7EXAMPLE"},
	{"iban", "INTERNATIONAL_BANK_ACCOUNT_NUMBER", "DE89 3704 0044 0532 0130 00"},
}

// streamPlaces put the value inside the answer, at its end (released by
// the end of the content block, not by later text) and at its start.
var streamPlaces = []struct{ name, before, after string }{
	{"middle", "Here it is: ", ". Anything else?"},
	{"end", "Here it is: ", ""},
	{"start", "", " is what you asked for."},
}

const streamTypes = "[CREDIT_DEBIT_CARD_NUMBER, US_SOCIAL_SECURITY_NUMBER, EMAIL, AWS_ACCESS_KEY, INTERNATIONAL_BANK_ACCOUNT_NUMBER]"

// streamFamilies are the native request bodies of each family (and stream
// shape) the emulator streams InvokeModelWithResponseStream chunks for.
var streamFamilies = []struct{ name, model, body string }{
	{"anthropic-messages", haiku, `{"anthropic_version":"bedrock-2023-05-31","max_tokens":64,"messages":[{"role":"user","content":"hi"}]}`},
	{"titan", "amazon.titan-text-express-v1", `{"inputText":"hi"}`},
	{"nova", "amazon.nova-lite-v1:0", `{"messages":[{"role":"user","content":[{"text":"hi"}]}]}`},
	{"llama", "meta.llama3-8b-instruct-v1:0", `{"prompt":"hi"}`},
	{"mistral-prompt", "mistral.mistral-large-2407-v1:0", `{"prompt":"hi"}`},
	{"mistral-chat", "mistral.mistral-large-2407-v1:0", `{"messages":[{"role":"user","content":"hi"}]}`},
	{"cohere", "cohere.command-r-v1:0", `{"message":"hi"}`},
	{"jamba", "ai21.jamba-1-5-mini-v1:0", `{"messages":[{"role":"user","content":"hi"}]}`},
}

func tokens(s string, n int) []string {
	var out []string
	for i := 0; i < len(s); i += n {
		out = append(out, s[i:min(i+n, len(s))])
	}
	return out
}

// streamEnv is Warden with one output guard (action) on every value type,
// in front of an emulator streaming *reply cut as *deltas.
func streamEnv(t *testing.T, action string, reply *string, deltas *[]string) *env {
	t.Helper()
	emu := bedrocktest.NewServer(bedrocktest.Config{
		Region:      "us-east-1",
		Credentials: map[string]string{wardenKey: wardenSecret},
		Profiles:    map[string]string{appProfile: haiku},
		Reply:       func(_, _, _ string) string { return *reply },
		Deltas:      func(_, _ string) []string { return *deltas },
	})
	t.Cleanup(emu.Close)
	e := &env{emu: emu, cp: newControlPlane(t), audit: newRecorder()}
	guards := "  out: {pii: {types: " + streamTypes + ", action: " + action + "}, applies_to: [output], unscannable: allow}\n"
	p := strings.Replace(guardPolicy+guards, "${GUARDS}", "[out]", 1)
	p = strings.ReplaceAll(p, "${UPSTREAM}", emu.URL)
	p = strings.ReplaceAll(p, "${CONTROL_PLANE}", e.cp.URL)
	e.start(t, p, "", nil)
	return e
}

// converseStreamText returns the text the SDK delivered and the stream's
// error.
func converseStreamText(t *testing.T, c *bedrockruntime.Client) (string, error) {
	out, err := c.ConverseStream(context.Background(), &bedrockruntime.ConverseStreamInput{ModelId: aws.String(haiku), Messages: userMsg("hi")})
	if err != nil {
		t.Fatalf("ConverseStream: %v", err)
	}
	st := out.GetStream()
	defer st.Close()
	var sb strings.Builder
	for ev := range st.Events() {
		if d, ok := ev.(*types.ConverseStreamOutputMemberContentBlockDelta); ok {
			if tx, ok := d.Value.Delta.(*types.ContentBlockDeltaMemberText); ok {
				sb.WriteString(tx.Value)
			}
		}
	}
	return sb.String(), st.Err()
}

// chunkText collects the answer text of one family's chunk: the strings at
// text keys, except a final chunk's copy of the whole answer (Cohere's
// response.text), which is returned apart.
func chunkText(v any, key string, sb, whole *strings.Builder) {
	switch x := v.(type) {
	case map[string]any:
		for k, c := range x {
			if k == "response" {
				chunkText(c, k, whole, whole)
				continue
			}
			chunkText(c, k, sb, whole)
		}
	case []any:
		for _, c := range x {
			chunkText(c, key, sb, whole)
		}
	case string:
		switch key {
		case "text", "outputText", "generation", "content":
			sb.WriteString(x)
		}
	}
}

func invokeStreamText(t *testing.T, c *bedrockruntime.Client, model, body string) (text, whole string, err error) {
	out, err := c.InvokeModelWithResponseStream(context.Background(), &bedrockruntime.InvokeModelWithResponseStreamInput{
		ModelId: aws.String(model), ContentType: aws.String("application/json"), Body: []byte(body),
	})
	if err != nil {
		t.Fatalf("InvokeModelWithResponseStream %s: %v", model, err)
	}
	st := out.GetStream()
	defer st.Close()
	var sb, wb strings.Builder
	for ev := range st.Events() {
		ch, ok := ev.(*types.ResponseStreamMemberChunk)
		if !ok {
			continue
		}
		var v any
		if err := json.Unmarshal(ch.Value.Bytes, &v); err != nil {
			t.Fatalf("%s chunk %s: %v", model, ch.Value.Bytes, err)
		}
		chunkText(v, "", &sb, &wb)
	}
	return sb.String(), wb.String(), st.Err()
}

// leaks returns the first 4-character run of value found in got, as
// written or with separators left out on both sides (a card number whose
// digits arrive with their spaces dropped leaks as well).
func leaks(got, value string) string {
	for _, p := range [][2]string{{got, value}, {compact(got), compact(value)}} {
		for i := 0; i+4 <= len(p[1]); i++ {
			if strings.Contains(p[0], p[1][i:i+4]) {
				return p[1][i : i+4]
			}
		}
	}
	return ""
}

// compact is s with everything but letters and digits left out.
func compact(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			return r
		}
		return -1
	}, s)
}

func digitsOf(value string) string {
	var b strings.Builder
	for _, r := range value {
		if r >= '0' && r <= '9' && !strings.ContainsRune(b.String(), r) {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// TestGuardStreamHoldBackSDK is issue 13's acceptance for streamed values:
// every value type, cut into 1-, 2- and 3-byte tokens, in the middle, at
// the end and at the start of the answer, through ConverseStream and each
// family's InvokeModelWithResponseStream chunks. block: the SDK raises
// ModelStreamErrorException naming the type, and nothing the client
// received (text, the final chunk's copy of the answer, the error message)
// holds a 4-character run of the value. mask: the client receives the
// answer with {TYPE} in the value's place and no digit of it.
func TestGuardStreamHoldBackSDK(t *testing.T) {
	for _, action := range []string{"block", "mask"} {
		t.Run(action, func(t *testing.T) {
			var reply string
			var deltas []string
			e := streamEnv(t, action, &reply, &deltas)
			c := e.client(t, nil)
			for _, v := range streamValues {
				for _, pl := range streamPlaces {
					for _, n := range []int{1, 2, 3} {
						reply = pl.before + v.value + pl.after
						deltas = tokens(reply, n)
						masked := pl.before + "{" + v.typ + "}" + pl.after
						check := func(t *testing.T, got, whole string, err error) {
							t.Helper()
							switch action {
							case "block":
								var mse *types.ModelStreamErrorException
								if !errors.As(err, &mse) {
									t.Fatalf("stream error %v, want ModelStreamErrorException (client got %q)", err, got)
								}
								if !strings.Contains(mse.ErrorMessage(), v.typ) {
									t.Errorf("error %q does not name %s", mse.ErrorMessage(), v.typ)
								}
								for _, r := range []string{got, whole, mse.ErrorMessage()} {
									if run := leaks(r, v.value); run != "" {
										t.Errorf("client received %q: %q of the value leaked", r, run)
									}
								}
							case "mask":
								if err != nil {
									t.Fatalf("stream: %v", err)
								}
								if got != masked {
									t.Errorf("client received %q, want %q", got, masked)
								}
								if whole != "" && whole != masked {
									t.Errorf("final chunk's whole answer %q, want %q", whole, masked)
								}
								if d := digitsOf(v.value); d != "" && strings.ContainsAny(got+whole, d) {
									t.Errorf("client received %q: a digit of the value", got+whole)
								}
								if run := leaks(got+whole, v.value); run != "" {
									t.Errorf("client received %q: %q of the value leaked", got+whole, run)
								}
							}
						}
						name := fmt.Sprintf("%s/%s/%d-byte", v.name, pl.name, n)
						t.Run(name+"/ConverseStream", func(t *testing.T) {
							got, err := converseStreamText(t, c)
							check(t, got, "", err)
						})
						for _, f := range streamFamilies {
							t.Run(name+"/"+f.name, func(t *testing.T) {
								got, whole, err := invokeStreamText(t, c, f.model, f.body)
								check(t, got, whole, err)
							})
						}
					}
				}
			}
		})
	}
}

// An exception the upstream relays inside the stream is text the client
// reads: it is scanned like event text (issue 13 §2).
func TestGuardStreamScansUpstreamException(t *testing.T) {
	for _, c := range []struct{ action, want string }{
		{"mask", "model failed on {EMAIL} and {US_SOCIAL_SECURITY_NUMBER}"},
		{"block", "warden: guard out: the response holds EMAIL, US_SOCIAL_SECURITY_NUMBER (in the upstream's modelStreamErrorException); the stream was stopped"},
	} {
		t.Run(c.action, func(t *testing.T) {
			reply, deltas := "Fine, thanks.", []string{"Fine,", " thanks."}
			e := streamEnv(t, c.action, &reply, &deltas)
			e.emu.Inject(bedrocktest.Fault{Op: "ConverseStream", MidStreamException: "modelStreamErrorException",
				Message: "model failed on jo.smith@example.com and 123-45-6789"})
			got, err := converseStreamText(t, e.client(t, nil))
			var mse *types.ModelStreamErrorException
			if !errors.As(err, &mse) {
				t.Fatalf("stream error %v, want ModelStreamErrorException", err)
			}
			if mse.ErrorMessage() != c.want {
				t.Errorf("error message %q, want %q", mse.ErrorMessage(), c.want)
			}
			if got != "" { // the emulator fails after its first event, messageStart
				t.Errorf("client received %q before the exception", got)
			}
			r := e.audit.wait(t, 1)[0]
			if len(r.Findings) != 2 || r.Findings[0].Phase != "output" {
				t.Errorf("findings %+v", r.Findings)
			}
		})
	}
}
