package bedrock

import (
	"encoding/json"
	"unicode/utf8"
)

// MaxEndUser bounds the end-user identifier CompatEndUser returns: longer
// values are cut (at a rune boundary). OpenAI documents 64 characters for
// safety_identifier; 256 leaves room for the other fields.
const MaxEndUser = 256

// CompatEndUser returns the end-user identifier an OpenAI-compatible or
// Anthropic Messages body states, "" when it states none (or the body is
// not one JSON object):
//
//	chat completions, responses   safety_identifier, else user (its deprecated predecessor)
//	messages                      metadata.user_id
//
// It is what the app says about its own user, not something Warden has
// verified: the record's app is the attribution Warden vouches for. Values
// that are not strings are ignored; control characters become '_'.
func CompatEndUser(op Operation, body []byte) string {
	members, _, err := ScanObject(body)
	if err != nil {
		return ""
	}
	str := func(raw []byte) string {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return ""
		}
		return cleanEndUser(s)
	}
	switch op {
	case OpOpenAIChatCompletions, OpOpenAIResponses, OpMantleChatCompletions, OpMantleResponses:
		var user string
		for _, m := range members {
			switch m.Key {
			case "safety_identifier":
				if v := str(body[m.ValueStart:m.ValueEnd]); v != "" {
					return v
				}
			case "user":
				if user == "" {
					user = str(body[m.ValueStart:m.ValueEnd])
				}
			}
		}
		return user
	case OpMantleMessages:
		for _, m := range members {
			if m.Key != "metadata" {
				continue
			}
			meta := body[m.ValueStart:m.ValueEnd]
			inner, _, err := ScanObject(meta)
			if err != nil {
				return ""
			}
			for _, im := range inner {
				if im.Key == "user_id" {
					return str(meta[im.ValueStart:im.ValueEnd])
				}
			}
		}
	}
	return ""
}

func cleanEndUser(s string) string {
	if len(s) > MaxEndUser {
		cut := MaxEndUser
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut]
	}
	clean := true
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	b := []byte(s)
	for i, c := range b {
		if c < 0x20 || c == 0x7f {
			b[i] = '_'
		}
	}
	return string(b)
}
