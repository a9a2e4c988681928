package bedrock

import "strings"

// Model families: the native InvokeModel body formats Warden knows
// (reference §3). The empty string is an unknown family, whose bodies are
// scanned string by string.
const (
	FamilyAnthropic      = "anthropic"         // Messages API (and the legacy text completions)
	FamilyTitanText      = "amazon.titan-text" // Titan Text
	FamilyNova           = "amazon.nova"       // Nova understanding models (messages-v1)
	FamilyLlama          = "meta.llama"
	FamilyMistral        = "mistral" // text completions and chat
	FamilyCohereCommandR = "cohere.command-r"
	FamilyJamba          = "ai21.jamba"
	FamilyUnknown        = ""
)

// Family returns the native body family of the model, derived from its
// foundation model id ("us.anthropic.claude-…" → FamilyAnthropic), or
// FamilyUnknown when the id hides its model (application profiles,
// provisioned and imported models, prompts, routers: resolve them through
// the control plane and call ModelFamily on the result). A custom model
// keeps the format of the base model named in its ARN.
func (m ModelID) Family() string {
	if m.Foundation != "" {
		return ModelFamily(m.Foundation)
	}
	if m.Kind == KindCustomModel {
		base, _, _ := strings.Cut(m.Resource, "/")
		return ModelFamily(base)
	}
	return FamilyUnknown
}

// ModelFamily maps a bare foundation model id ("meta.llama3-1-70b-instruct-v1:0")
// to its family; ids of other model families (embeddings, image and video
// generation, other providers) are FamilyUnknown.
func ModelFamily(foundation string) string {
	provider, name, ok := strings.Cut(foundation, ".")
	if !ok {
		return FamilyUnknown
	}
	switch provider {
	case "anthropic":
		return FamilyAnthropic
	case "amazon":
		switch {
		case strings.HasPrefix(name, "titan-text"), strings.HasPrefix(name, "titan-tg1"):
			return FamilyTitanText
		case strings.HasPrefix(name, "nova-canvas"), strings.HasPrefix(name, "nova-reel"),
			strings.HasPrefix(name, "nova-sonic"), strings.HasPrefix(name, "nova-2-sonic"),
			strings.HasPrefix(name, "nova-2-multimodal-embeddings"):
			return FamilyUnknown
		case strings.HasPrefix(name, "nova-"):
			return FamilyNova
		}
	case "meta":
		if strings.HasPrefix(name, "llama") {
			return FamilyLlama
		}
	case "mistral":
		return FamilyMistral
	case "cohere":
		if strings.HasPrefix(name, "command-r") {
			return FamilyCohereCommandR
		}
	case "ai21":
		if strings.HasPrefix(name, "jamba") {
			return FamilyJamba
		}
	}
	return FamilyUnknown
}
